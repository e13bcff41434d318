#!/usr/bin/env python3
"""fleetlab: a local fleet of systemd hosts in podman containers, reached over real SSH.

The lab stands in for cloud hosts: each host runs systemd, is reached over SSH on a
127.0.0.1 port as a non-root admin user with a generated key and passwordless sudo, and is
unprivileged unless a scenario asks for more. An air-gapped variant puts the hosts on an
internal network whose only way out is a local package and artifact mirror.

    fleetlab.py doctor [--install]      what is missing on this machine (and install it)
    fleetlab.py images [--distro ...]   build the Debian base images when missing
    fleetlab.py up [--hosts N] [--distros debian12,debian13] [--airgap] [--privileged]
    fleetlab.py status | inventory | down [--name NAME]

Everything is labelled `fleetforge.lab=<name>`, so `down` and `clean` find all of it.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".lab"
INVENTORY_DIR = REPO / "inventories" / "lab"
DEBIAN_MIRROR = os.environ.get("FLEETLAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ADMIN_USER = "fleetadmin"
LABEL = "fleetforge.lab"
ULIMITS = ["--ulimit", "nofile=1024:20000", "--ulimit", "nproc=4096:4096"]
PODMAN = ["podman", "--runtime", "runc"]
# Kernel settings of each host's own network namespace (never the machine's): what
# fleetforge.fleet.log_forwarding sets at runtime on a real host and cannot set from inside an
# unprivileged container (read-only /proc/sys). With the kernel's default of 10 datagrams,
# journald dropped lines of a burst before rsyslog saw them ("Forwarding to syslog missed").
HOST_SYSCTLS = ["--sysctl", "net.unix.max_dgram_qlen=512"]

# distro key -> (suite, version id). The recipe below is hashed into the image tag, so a
# change to it rebuilds the image and a stale one is never reused.
DISTROS = {"debian12": ("bookworm", "12"), "debian13": ("trixie", "13")}
BASE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "python3", "python3-apt", "openssh-server", "sudo",
    "iproute2", "procps", "ca-certificates", "gnupg", "kmod", "less",
]
IMAGE_RECIPE_VERSION = "3"
HOSTKEY_UNIT = """[Unit]
Description=Generate SSH host keys on first boot (fleetlab)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""
# Wait until systemd has booted (running, or degraded by a unit a container cannot start).
WAIT_BOOT = ('for i in $(seq 1 120); do case "$(systemctl is-system-running 2>/dev/null)" in '
             'running|degraded) break;; esac; sleep 0.5; done')
MASKED_UNITS = [
    "getty.target", "console-getty.service", "systemd-logind.service",
    "systemd-remount-fs.service", "sys-kernel-config.mount", "sys-kernel-debug.mount",
    "sys-fs-fuse-connections.mount", "systemd-firstboot.service",
]


class LabError(Exception):
    """An error the user can act on; printed without a traceback."""


@dataclass
class Host:
    name: str        # inventory hostname and the container's hostname
    distro: str
    port: int
    container: str = ""
    address: str = ""


# ---------------------------------------------------------------- helpers
def run(cmd, check=True, capture=True, input_text=None, timeout=None):
    """Run a command as an argument list; return CompletedProcess, raise LabError on failure."""
    env = dict(os.environ, LC_ALL="C")
    try:
        proc = subprocess.run(cmd, check=False, text=True, input=input_text, env=env,
                              capture_output=capture, timeout=timeout)
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]} is not installed: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        raise LabError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{detail}")
    return proc


def log(msg):
    print(f"fleetlab: {msg}", file=sys.stderr, flush=True)


def recipe_hash(distro: str) -> str:
    suite, _ = DISTROS[distro]
    text = json.dumps([IMAGE_RECIPE_VERSION, suite, BASE_PACKAGES, HOSTKEY_UNIT, MASKED_UNITS,
                       DEBIAN_MIRROR], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_ref(distro: str) -> str:
    return f"localhost/fleetforge-lab:{distro}-{recipe_hash(distro)}"


def image_exists(ref: str) -> bool:
    return run(["podman", "image", "exists", ref], check=False).returncode == 0


# ---------------------------------------------------------------- doctor
REQUIRED_TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap",
                  "ssh": "openssh-client", "ssh-keygen": "openssh-client"}


def missing_tools():
    return {tool: pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None
            and not Path("/usr/sbin", tool).exists()}


def configure_podman_runtime():
    """Make runc podman's default runtime (crun fails on cgroup v1 hybrid hosts)."""
    conf = Path("/etc/containers/containers.conf")
    if os.geteuid() != 0:
        return
    text = conf.read_text() if conf.exists() else ""
    if 'runtime = "runc"' in text:
        return
    conf.parent.mkdir(parents=True, exist_ok=True)
    if "[engine]" in text:
        text = text.replace("[engine]", '[engine]\nruntime = "runc"', 1)
    else:
        text += '\n[engine]\nruntime = "runc"\n'
    conf.write_text(text)
    log(f"set runc as podman's runtime in {conf}")


def cmd_doctor(args):
    missing = missing_tools()
    if missing and args.install:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise LabError("missing " + ", ".join(sorted(missing)) + ": install the Debian "
                           "packages " + " ".join(sorted(set(missing.values()))) +
                           " (needs root and apt-get)")
        log("installing " + " ".join(sorted(set(missing.values()))))
        env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
        run(env_cmd + ["apt-get", "update", "-qq"], timeout=600)
        # with recommends: podman then brings netavark/aardvark-dns, the network backend
        # the lab (internal networks, published ports) was verified with
        run(env_cmd + ["apt-get", "install", "-y", "-qq", *sorted(set(missing.values())),
                       "uidmap", "slirp4netns", "fuse-overlayfs", "iptables"], timeout=1200)
        missing = missing_tools()
    if missing:
        raise LabError("missing " + ", ".join(sorted(missing)) + "; install the Debian "
                       "packages: apt-get install " + " ".join(sorted(set(missing.values()))))
    configure_podman_runtime()
    probe = run(PODMAN + ["info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False)
    if probe.returncode != 0:
        raise LabError("podman does not work here: " + probe.stderr.strip())
    log("podman, runc, debootstrap and ssh are present")


# ---------------------------------------------------------------- images
def build_image(distro: str):
    suite, _ = DISTROS[distro]
    ref = image_ref(distro)
    if image_exists(ref):
        log(f"image {ref} is present")
        return ref
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise LabError("debootstrap is missing: apt-get install debootstrap")
    log(f"building {ref} with debootstrap (about a minute)")
    with tempfile.TemporaryDirectory(prefix=f"fleetlab-{distro}-") as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
             suite, str(root), DEBIAN_MIRROR], timeout=1800)
        _customise_root(root, suite)
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        imp = subprocess.run(PODMAN[:1] + ["import", "--change", 'CMD ["/sbin/init"]',
                                           "--change", "STOPSIGNAL SIGRTMIN+3", "-", ref],
                             stdin=tar.stdout, capture_output=True, text=True, check=False)
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise LabError(f"podman import of {ref} failed: {imp.stderr.strip()}")
    log(f"built {ref}")
    return ref


def _customise_root(root: Path, suite: str):
    """Turn a debootstrap tree into a bootable container image (systemd, sshd, apt)."""
    security = "http://deb.debian.org/debian-security"
    (root / "etc/apt/sources.list").write_text(
        f"deb {DEBIAN_MIRROR} {suite} main\n"
        f"deb {DEBIAN_MIRROR} {suite}-updates main\n"
        f"deb {security} {suite}-security main\n")
    (root / "etc/machine-id").write_text("")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    unit = root / "etc/systemd/system/fleetlab-hostkeys.service"
    unit.write_text(HOSTKEY_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "fleetlab-hostkeys.service"
    if not link.exists():
        link.symlink_to("/etc/systemd/system/fleetlab-hostkeys.service")
    for name in MASKED_UNITS:
        target = root / "etc/systemd/system" / name
        if target.exists() or target.is_symlink():
            target.unlink()
        target.symlink_to("/dev/null")
    (root / "etc/hostname").write_text("fleetlab\n")
    # apt caches stay out of the image
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def cmd_images(args):
    for distro in args.distro or list(DISTROS):
        if distro not in DISTROS:
            raise LabError(f"unknown distro {distro!r}; known: {', '.join(DISTROS)}")
        build_image(distro)


# ---------------------------------------------------------------- lab up / down
def lab_dir(name: str) -> Path:
    return STATE_DIR / name


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(count: int, start: int = 20000, stop: int = 40000) -> int:
    """First port of `count` consecutive free 127.0.0.1 ports."""
    for base in range(start, stop, 10):
        if all(port_free(base + i) for i in range(count)):
            return base
    raise LabError(f"no {count} consecutive free ports between {start} and {stop}")


@contextlib.contextmanager
def port_lock():
    """Serialise choosing ports and publishing them across every lab on this machine: two
    `up` runs started together (molecule scenarios side by side) would otherwise both find
    the same ports free and one would fail with 'address already in use'."""
    path = Path(tempfile.gettempdir()) / "fleetlab-ports.lock"
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def assign_ports(hosts: list[Host], port_base: int | None):
    """Choose (or re-check) the hosts' ports; call under port_lock() right before publishing."""
    base = free_port_run(len(hosts)) if port_base is None else port_base
    for i, host in enumerate(hosts):
        host.port = base + i
        if not 1024 < host.port < 65536:
            raise LabError(f"port {host.port} is out of range; choose another --port-base")
        if not port_free(host.port):
            raise LabError(f"127.0.0.1:{host.port} is already in use; choose another "
                           f"--port-base or stop what listens there")


def plan_hosts(name: str, specs: list[tuple[str, str]], port_base: int | None) -> list[Host]:
    """specs: (inventory name, distro) pairs. Every check happens before anything starts."""
    if not specs:
        raise LabError("--hosts must be at least 1")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise LabError(f"lab name {name!r} must be letters, digits, dashes and underscores")
    unknown = sorted({d for _, d in specs if d not in DISTROS})
    if unknown:
        raise LabError(f"unknown distro {', '.join(unknown)}; known: {', '.join(DISTROS)}")
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        raise LabError(f"host names must be unique: {', '.join(names)}")
    hosts = [Host(name=host_name, distro=distro, port=0, container=f"{name}-{host_name}")
             for host_name, distro in specs]
    assign_ports(hosts, port_base)  # checked now; chosen again under port_lock() at start
    return hosts


def host_specs(args) -> list[tuple[str, str]]:
    """--host NAME:DISTRO entries win; otherwise --hosts N over --distros, named nodeN."""
    if args.host:
        specs = []
        for item in args.host:
            host_name, _, distro = item.partition(":")
            if not host_name or not distro:
                raise LabError(f"--host takes NAME:DISTRO, got {item!r}")
            specs.append((host_name, distro))
        return specs
    if args.hosts < 1:
        raise LabError(f"--hosts must be at least 1, got {args.hosts}")
    distros = [d.strip() for d in args.distros.split(",") if d.strip()]
    if not distros:
        raise LabError("--distros is empty")
    return [(f"node{i + 1}", distros[i % len(distros)]) for i in range(args.hosts)]


def lab_networks(name: str) -> tuple[str, str]:
    """The lab's bridge network and, for an air-gapped lab, its internal network."""
    return f"fleetlab-{name}", f"fleetlab-{name}-int"


def existing(name: str, kind: str = "container") -> list[str]:
    if kind == "container":
        out = run(["podman", "ps", "-a", "--filter", f"label={LABEL}={name}",
                   "--format", "{{.Names}}"], check=False).stdout
    else:
        out = run(["podman", "network", "ls", "--format", "{{.Name}}"], check=False).stdout
        # exactly this lab's networks: a prefix match would take lab "x_static"'s networks (and,
        # with `network rm -f`, its containers) down with lab "x"
        return [n for n in out.split() if n in lab_networks(name)]
    return out.split()


def ensure_key(name: str) -> Path:
    key = lab_dir(name) / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"fleetlab-{name}",
             "-f", str(key)])
    return key


def create_network(net: str, internal: bool) -> str:
    """Create the lab's network (podman picks a free subnet, under its lock, so parallel
    labs never collide); return its gateway, the address SSH arrives from."""
    if run(["podman", "network", "exists", net], check=False).returncode != 0:
        cmd = ["podman", "network", "create", "--label", f"{LABEL}=1"]
        if internal:
            cmd.append("--internal")
        run(cmd + [net])
    info = json.loads(run(["podman", "network", "inspect", net]).stdout)[0]
    return info["subnets"][0]["gateway"]


CAPABILITY_NAMES = {"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE", "AUDIT_CONTROL",
                    "AUDIT_WRITE", "SYS_RESOURCE", "IPC_LOCK"}


def check_capabilities(caps: list[str]) -> list[str]:
    """Capabilities a scenario asks for (e.g. NET_ADMIN, so nftables loads in the host's own
    network namespace); names only from a known list, checked before anything starts."""
    wanted = sorted({c.upper().removeprefix("CAP_") for c in caps or []})
    unknown = [c for c in wanted if c not in CAPABILITY_NAMES]
    if unknown:
        raise LabError(f"unknown or unsupported capability {', '.join(unknown)}; "
                       f"known: {', '.join(sorted(CAPABILITY_NAMES))}")
    return wanted


def start_host(host: Host, name: str, net: str, privileged: bool, airgap: bool,
               caps: tuple[str, ...] = ()):
    """Port publishing does not cross an internal network: air-gapped hosts are reached on
    their own address from the bridge, the others through a 127.0.0.1 port."""
    cmd = PODMAN + ["run", "-d", "--name", host.container, "--hostname", host.name,
                    "--label", f"{LABEL}={name}", "--label", f"fleetforge.distro={host.distro}",
                    "--systemd=always", *ULIMITS, *HOST_SYSCTLS, "--network", net,
                    "--tmpfs", "/run", "--tmpfs", "/tmp"]
    if not airgap:
        cmd += ["-p", f"127.0.0.1:{host.port}:22"]
    if privileged:
        cmd.append("--privileged")
    cmd += [f"--cap-add={cap}" for cap in caps]
    run(cmd + [image_ref(host.distro), "/sbin/init"], timeout=120)


def provision_admin(host: Host, pubkey: str):
    """What cloud-init does on a cloud host: a sudo admin with key-only SSH."""
    script = f"""set -e
{WAIT_BOOT}
id {ADMIN_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo {ADMIN_USER}
usermod -p '*' {ADMIN_USER}
install -d -m 700 -o {ADMIN_USER} -g {ADMIN_USER} /home/{ADMIN_USER}/.ssh
printf '%s\\n' '{pubkey}' > /home/{ADMIN_USER}/.ssh/authorized_keys
chown {ADMIN_USER}:{ADMIN_USER} /home/{ADMIN_USER}/.ssh/authorized_keys
chmod 600 /home/{ADMIN_USER}/.ssh/authorized_keys
printf '%s ALL=(ALL) NOPASSWD:ALL\\n' {ADMIN_USER} > /etc/sudoers.d/90-fleetlab-admin
chmod 440 /etc/sudoers.d/90-fleetlab-admin
systemctl is-active ssh >/dev/null 2>&1 || systemctl restart ssh
"""
    run(["podman", "exec", "-i", host.container, "bash", "-s"], input_text=script, timeout=120)
    addr = run(["podman", "inspect", "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", host.container]).stdout
    host.address = addr.split()[0] if addr.split() else ""


def ssh_target(host: Host, airgap: bool) -> tuple[str, int]:
    return (host.address, 22) if airgap else ("127.0.0.1", host.port)


def wait_for_ssh(host: Host, key: Path, airgap: bool, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last = ""
    addr, port = ssh_target(host, airgap)
    while time.monotonic() < deadline:
        proc = run(ssh_base(key, port) + [f"{ADMIN_USER}@{addr}", "sudo", "-n", "true"],
                   check=False, timeout=30)
        if proc.returncode == 0:
            return
        last = proc.stderr.strip()
        time.sleep(1)
    raise LabError(f"{host.name}: no SSH login as {ADMIN_USER} on {addr}:{port}: {last}")


def ssh_base(key: Path, port: int) -> list[str]:
    return ["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


def write_inventory(name: str, hosts: list[Host], key: Path, airgap: bool, gateway: str,
                    extra_vars: dict):
    INVENTORY_DIR.mkdir(parents=True, exist_ok=True)
    by_distro: dict[str, dict] = {}
    for host in hosts:
        addr, port = ssh_target(host, airgap)
        by_distro.setdefault(host.distro, {})[host.name] = {
            "ansible_host": addr, "ansible_port": port, "fleetlab_address": host.address,
            "fleetlab_container": host.container}
    children = {f"lab_{d}": {"hosts": h} for d, h in by_distro.items()}
    inventory = {"all": {"children": {"lab": {"children": children}}, "vars": {
        "ansible_user": ADMIN_USER,
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "fleetlab_name": name,
        "fleetlab_airgap": airgap,
        # SSH through 127.0.0.1 arrives from the podman gateway: the firewall must allow it.
        "fleetlab_ssh_source": gateway,
        **extra_vars,
    }}}
    path = INVENTORY_DIR / ("hosts.yml" if name == "lab" else f"{name}.yml")
    path.write_text("# generated by tools/fleetlab.py; do not edit\n" +
                    json.dumps(inventory, indent=2) + "\n")
    state = {"name": name, "airgap": airgap, "gateway": gateway,
             "hosts": [h.__dict__ for h in hosts]}
    (lab_dir(name) / "state.json").write_text(json.dumps(state, indent=2))
    return path


def start_mirror(name: str, public: str, internal: str) -> str:
    """The air-gapped lab's only way out: apt-cacher-ng (3142) and a file server (8080)."""
    mirror = f"{name}-mirror"
    artifacts = lab_dir(name) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    run(PODMAN + ["run", "-d", "--name", mirror, "--hostname", mirror,
                  "--label", f"{LABEL}={name}", "--systemd=always", *ULIMITS,
                  "--network", public, "-v", f"{artifacts}:/srv/artifacts:ro,Z",
                  image_ref("debian12"), "/sbin/init"], timeout=120)
    run(["podman", "network", "connect", "--alias", "mirror", internal, mirror])
    script = f"""set -e
{WAIT_BOOT}
if ! command -v apt-cacher-ng >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends apt-cacher-ng >/dev/null
fi
sed -i 's/^# *PassThroughPattern:.*/PassThroughPattern: .*/' /etc/apt-cacher-ng/acng.conf || true
systemctl enable --now apt-cacher-ng >/dev/null 2>&1
systemctl restart apt-cacher-ng
cat > /etc/systemd/system/fleetlab-files.service <<'EOF'
[Unit]
Description=fleetlab artifact mirror
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --directory /srv/artifacts
[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable --now fleetlab-files.service >/dev/null 2>&1
"""
    run(["podman", "exec", "-i", mirror, "bash", "-s"], input_text=script, timeout=600)
    fmt = '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % internal  # noqa: UP031
    return run(["podman", "inspect", "-f", fmt, mirror]).stdout.strip()


def cmd_up(args):
    name = args.name
    hosts = plan_hosts(name, host_specs(args), args.port_base)
    caps = check_capabilities(getattr(args, "cap_add", None))
    distros = [h.distro for h in hosts]
    if existing(name):
        raise LabError(f"lab {name!r} already runs ({', '.join(existing(name))}); "
                       f"run 'fleetlab.py down --name {name}' first")
    cmd_doctor(argparse.Namespace(install=False))
    for distro in sorted(set(distros) | ({"debian12"} if args.airgap else set())):
        build_image(distro)
    key = ensure_key(name)
    pubkey = key.with_suffix(".pub").read_text().strip()
    public, internal = lab_networks(name)
    internal = internal if args.airgap else None
    try:
        host_net, gateway = public, create_network(public, False)
        mirror_addr = ""
        if internal:
            gateway = create_network(internal, True)
            mirror_addr = start_mirror(name, public, internal)
            host_net = internal
        with port_lock():
            if not internal:
                assign_ports(hosts, args.port_base)
            for host in hosts:
                start_host(host, name, host_net, args.privileged, bool(internal), tuple(caps))
        for host in hosts:
            provision_admin(host, pubkey)
        for host in hosts:
            wait_for_ssh(host, key, bool(internal))
    except (LabError, KeyboardInterrupt):
        log("start failed; removing what was created")
        teardown(name)
        raise
    mirror_vars = {}
    if mirror_addr:
        # The only way out of the air-gapped network: the collection's offline settings.
        mirror_vars = {
            "fleet_apt_mirror": f"http://{mirror_addr}:3142/deb.debian.org/debian",
            "fleet_apt_security_mirror": f"http://{mirror_addr}:3142/deb.debian.org/debian-security",
            "fleet_artifact_mirror": f"http://{mirror_addr}:8080"}
    path = write_inventory(name, hosts, key, bool(internal), gateway, mirror_vars)
    for host in hosts:
        addr, port = ssh_target(host, bool(internal))
        print(f"{host.name}\t{host.distro}\tssh -i {key} -p {port} {ADMIN_USER}@{addr}")
    log(f"inventory written to {path.relative_to(REPO)}")


def teardown(name: str):
    names = existing(name)
    if names:
        run(["podman", "rm", "-f", "-t", "2", *names], check=False, timeout=180)
    for net in existing(name, "network"):
        run(["podman", "network", "rm", "-f", net], check=False)
    for path in (INVENTORY_DIR / ("hosts.yml" if name == "lab" else f"{name}.yml"),
                 lab_dir(name) / "state.json"):
        path.unlink(missing_ok=True)


def cmd_down(args):
    teardown(args.name)
    log(f"lab {args.name!r} removed")


def cmd_clean(_args):
    """Remove every lab and molecule container left over by an earlier run."""
    out = run(["podman", "ps", "-a", "--format", "{{.Names}} {{.Labels}}"], check=False).stdout
    names = [line.split()[0] for line in out.splitlines()
             if LABEL in line or "molecule" in line]
    if names:
        run(["podman", "rm", "-f", "-t", "2", *names], check=False, timeout=300)
    nets = run(["podman", "network", "ls", "--format", "{{.Name}}"], check=False).stdout.split()
    for net in nets:
        if net.startswith("fleetlab-") or net.startswith("molecule"):
            run(["podman", "network", "rm", "-f", net], check=False)
    log(f"removed {len(names)} leftover container(s)")


def cmd_status(args):
    state = lab_dir(args.name) / "state.json"
    if not state.exists():
        raise LabError(f"lab {args.name!r} is not running")
    print(state.read_text())


def cmd_inventory(args):
    path = INVENTORY_DIR / ("hosts.yml" if args.name == "lab" else f"{args.name}.yml")
    if not path.exists():
        raise LabError(f"lab {args.name!r} has no inventory; run 'fleetlab.py up' first")
    print(path)


def add_host_arguments(up, hosts: int, distros: str):
    """The host selection options `up` takes, shared with tools/fleetvm.py."""
    up.add_argument("--hosts", type=int, default=hosts)
    up.add_argument("--distros", default=distros)
    up.add_argument("--host", action="append", metavar="NAME:DISTRO",
                    help="a host by name (repeatable); overrides --hosts/--distros")
    up.add_argument("--port-base", type=int, default=None,
                    help="first SSH port on 127.0.0.1 (default: the first free run from 20000)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fleetlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    doc = sub.add_parser("doctor", help="check (and with --install, install) what the lab needs")
    doc.add_argument("--install", action="store_true")
    img = sub.add_parser("images", help="build base images when missing")
    img.add_argument("--distro", action="append")
    up = sub.add_parser("up", help="start a lab")
    add_host_arguments(up, hosts=3, distros="debian12,debian13")
    up.add_argument("--airgap", action="store_true")
    up.add_argument("--privileged", action="store_true",
                    help="privileged hosts (nested containers); kernel settings written in "
                         "them reach this machine's kernel")
    up.add_argument("--cap-add", action="append", metavar="CAP",
                    help="add a capability to unprivileged hosts (repeatable), e.g. NET_ADMIN "
                         "so nftables rules load in the host's own network namespace")
    for cmd in ("down", "status", "inventory"):
        p = sub.add_parser(cmd)
        p.add_argument("--name", default="lab")
    up.add_argument("--name", default="lab")
    sub.add_parser("clean", help="remove leftover lab and molecule containers")
    args = parser.parse_args(argv)
    handler = {"doctor": cmd_doctor, "images": cmd_images, "up": cmd_up, "down": cmd_down,
               "status": cmd_status, "inventory": cmd_inventory, "clean": cmd_clean}[args.cmd]
    try:
        handler(args)
    except LabError as exc:
        print(f"fleetlab: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
