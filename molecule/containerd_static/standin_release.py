"""Stand-in static releases for the lab's artifact mirror (upstream downloads are unreachable here).

Repacks Debian 12's containerd, runc and containernetworking-plugins binaries under the file
names and mirror layout the containerd role reads for ``containerd_install_method: static``,
with versions marked ``-standin``, and writes their sha256 as ``checksums.json`` (the shape of
``containerd_checksums``). This proves the role's static path (mirror URLs, checksum check,
unpacking, unit, service), not upstream's archives.

Usage: ``python3 standin_release.py ARTIFACTS_DIR`` (on a Debian 12 controller, as root).
"""
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ARCH = "amd64"
VERSIONS = {"containerd": "1.6.20-standin", "runc": "1.1.5-standin", "cni": "1.1.1-standin"}


def _sha256(path):
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _extract(packages, work):
    subprocess.run(["apt-get", "download", *packages], cwd=work, check=True, capture_output=True)
    root = work / "root"
    for deb in sorted(work.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def _tar(out, members):
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        for arcname, path in members:
            tar.add(path, arcname=arcname)


def build(artifacts):
    with tempfile.TemporaryDirectory() as tmp:
        root = _extract(["containerd", "runc", "containernetworking-plugins"], Path(tmp))
        ctd, runc, cni = VERSIONS["containerd"], VERSIONS["runc"], VERSIONS["cni"]
        files = {
            "containerd": artifacts / "containerd" / ctd / f"containerd-{ctd}-linux-{ARCH}.tar.gz",
            "runc": artifacts / "runc" / runc / f"runc.{ARCH}",
            "cni": artifacts / "cni-plugins" / cni / f"cni-plugins-linux-{ARCH}-v{cni}.tgz",
        }
        _tar(files["containerd"], [(f"bin/{name}", root / "usr/bin" / name)
                                   for name in ("containerd", "containerd-shim-runc-v2", "ctr")])
        files["runc"].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "usr/sbin/runc", files["runc"])
        _tar(files["cni"], [(f"./{p.name}", p) for p in sorted((root / "usr/lib/cni").iterdir())])
    checksums = {name: {ARCH: {VERSIONS[name]: _sha256(path)}} for name, path in files.items()}
    (artifacts / "checksums.json").write_text(json.dumps(checksums, indent=1) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
