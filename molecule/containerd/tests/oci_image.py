"""Build a one-layer OCI image archive from a directory, with the standard library only.

Run on the lab host (no registry is reachable): ``python3 oci_image.py ROOTFS OUT.tar NAME``.
The archive is what ``ctr images import`` and ``docker load`` read. The tests load this file
too, for ``busybox_run``, which builds a busybox image on a host and runs a container from it.
"""
import base64
import hashlib
import io
import json
import sys
import tarfile


def _blob(tar, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build(rootfs, out, name):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(rootfs, arcname=".")
    layer = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    with tarfile.open(out, "w") as tar:
        layer_desc = dict(_blob(tar, layer), mediaType="application/vnd.oci.image.layer.v1.tar")
        config_desc = dict(_blob(tar, config), mediaType="application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config_desc, "layers": [layer_desc]}).encode()
        manifest_desc = dict(_blob(tar, manifest), mediaType="application/vnd.oci.image.manifest.v1+json")
        manifest_desc["annotations"] = {"io.containerd.image.name": name,
                                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
        _file(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _file(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}).encode())


def busybox_run(host, snapshotter, image="localhost/fleetforge/busybox:test"):
    """On a testinfra host: image from Debian's busybox-static, imported and run with ctr.

    Returns the ``ctr run`` result of ``echo hello from $(uname -s)`` in the container.
    """
    with host.sudo():
        install = host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                           "busybox-static")
        assert install.rc == 0, install.stderr
        with open(__file__, "rb") as source:
            builder = base64.b64encode(source.read()).decode()
        build = host.run("set -e; rm -rf /tmp/fleettest-bb && mkdir -p /tmp/fleettest-bb/rootfs/bin; "
                         "cp /bin/busybox /tmp/fleettest-bb/rootfs/bin/; "
                         "ln -s busybox /tmp/fleettest-bb/rootfs/bin/sh; "
                         f"echo {builder} | base64 -d > /tmp/fleettest-bb/oci_image.py; "
                         "python3 /tmp/fleettest-bb/oci_image.py /tmp/fleettest-bb/rootfs "
                         f"/tmp/fleettest-bb/image.tar {image}")
        assert build.rc == 0, build.stderr
        # ctr chooses the snapshotter on the client side, not from the CRI config
        imported = host.run(f"ctr -n fleettest images import --snapshotter {snapshotter} "
                            "/tmp/fleettest-bb/image.tar")
        assert imported.rc == 0, imported.stderr
        host.run("ctr -n fleettest containers rm fleettest-run")
        return host.run(f"ctr -n fleettest run --rm --snapshotter {snapshotter} {image} fleettest-run "
                        "/bin/sh -c 'echo hello from $(uname -s)'")


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2], sys.argv[3])
