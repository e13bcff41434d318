#!/usr/bin/env python3
"""fleetvm: lab hosts with a real kernel, as qemu VMs under software emulation (TCG).

Containers share this machine's kernel, so kernel-level controls (module blocklists, kernel.*
sysctls, auditd rules, mount options, AppArmor) can only be proven in a VM. The VMs follow the
lab's conventions (tools/fleetlab.py): reached over SSH on a 127.0.0.1 port as `fleetadmin`
(generated key, key-only, passwordless sudo), an inventory in inventories/lab/<name>.yml, state
and key in .lab/<name>/.

    fleetvm.py doctor [--install]       qemu, qemu-img, debootstrap, mkfs.ext4 (and install them)
    fleetvm.py image [--distro debian12] [--packages P,...]   build the base disk when missing
    fleetvm.py up [--name NAME] [--hosts N | --host NAME:DISTRO ...] [--packages P,...]
                  [--memory MiB] [--cpus N]
    fleetvm.py reboot [--name NAME] [--host NAME]   reboot and wait for SSH on a new boot id
    fleetvm.py stop | start | down | status [--name NAME]
    fleetvm.py clean                    remove every VM lab (all .lab/*/ with qemu pid files)

The base disk is a debootstrap root with the distribution's cloud kernel, made into an ext4
image without loop mounts and tagged by a hash of its recipe. Each host boots from its own
qcow2 overlay with -kernel/-initrd, so the base is never written. The host's admin key reaches
the guest on the kernel command line; a first-boot unit creates the admin user from it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleetlab  # the lab's conventions and helpers: one source for both tools
from fleetlab import ADMIN_USER, DEBIAN_MIRROR, Host, LabError, run

REPO = fleetlab.REPO
CACHE_DIR = REPO / ".cache" / "vm"
# qemu's user network: the guest's address, and where SSH forwarded from 127.0.0.1 arrives from
GUEST_ADDRESS = "10.0.2.15"
SLIRP_GATEWAY = "10.0.2.2"
VM_DISTROS = {"debian12": "bookworm"}
VM_PACKAGES = ["linux-image-cloud-amd64", "initramfs-tools", "udev", "ifupdown",
               "isc-dhcp-client"]
VM_RECIPE_VERSION = "1"
DISK_SIZE = "4G"
# Generous: under emulation on a busy machine a boot has been seen to take over six minutes.
BOOT_TIMEOUT = 900.0
REQUIRED_TOOLS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
                  "debootstrap": "debootstrap", "mkfs.ext4": "e2fsprogs",
                  "ssh": "openssh-client", "ssh-keygen": "openssh-client"}

# /tmp is a tmpfs of its own, as on Debian 13 and on hosts partitioned the CIS way, so that the
# mount-option controls for /tmp have a mount to act on (/var/tmp stays on the root file system).
FSTAB = """/dev/vda / ext4 rw,errors=remount-ro 0 1
tmpfs /tmp tmpfs defaults 0 0
"""
INTERFACES = """auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
"""
# First boot only: the admin user, its key and the hostname, read from the kernel command line
# (what cloud-init does on a cloud host). Later boots keep whatever the roles made of them.
PROVISION_SCRIPT = f"""#!/bin/sh
set -eu
param() {{ tr ' ' '\\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }}
key=$(param fleetvm.sshkey | tr ':' ' ')
name=$(param systemd.hostname)
[ -n "$key" ] || {{ echo "fleetvm: no fleetvm.sshkey= on the kernel command line" >&2; exit 1; }}
id {ADMIN_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo {ADMIN_USER}
usermod -p '*' {ADMIN_USER}
install -d -m 700 -o {ADMIN_USER} -g {ADMIN_USER} /home/{ADMIN_USER}/.ssh
printf '%s\\n' "$key" > /home/{ADMIN_USER}/.ssh/authorized_keys
chown {ADMIN_USER}:{ADMIN_USER} /home/{ADMIN_USER}/.ssh/authorized_keys
chmod 600 /home/{ADMIN_USER}/.ssh/authorized_keys
printf '%s ALL=(ALL) NOPASSWD:ALL\\n' {ADMIN_USER} > /etc/sudoers.d/90-fleetlab-admin
chmod 440 /etc/sudoers.d/90-fleetlab-admin
if [ -n "$name" ]; then
  printf '%s\\n' "$name" > /etc/hostname
  printf '127.0.1.1 %s\\n' "$name" >> /etc/hosts
fi
install -d /var/lib/fleetvm
touch /var/lib/fleetvm/provisioned
"""
PROVISION_UNIT = """[Unit]
Description=Create the lab's admin user on first boot (fleetvm)
Before=ssh.service
ConditionPathExists=!/var/lib/fleetvm/provisioned

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/fleetvm-provision

[Install]
WantedBy=multi-user.target
"""
# apt's daily timers are Persistent: on a never-run image they fire right after the first boot
# and hold the dpkg lock while a converge installs packages. A stamp from build time defers them
# to their next calendar slot.
APT_TIMER_STAMPS = ["stamp-apt-daily.timer", "stamp-apt-daily-upgrade.timer"]


def log(msg):
    print(f"fleetvm: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pure helpers
def recipe_hash(distro: str, packages=()) -> str:
    """Tag of the base disk: any change to what goes into it builds a new one."""
    text = json.dumps([VM_RECIPE_VERSION, VM_DISTROS[distro], fleetlab.BASE_PACKAGES,
                       VM_PACKAGES, sorted(set(packages)), fleetlab.HOSTKEY_UNIT,
                       fleetlab.MASKED_UNITS, FSTAB, INTERFACES, PROVISION_SCRIPT,
                       PROVISION_UNIT, APT_TIMER_STAMPS, DISK_SIZE, DEBIAN_MIRROR], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_dir(distro: str, packages=()) -> Path:
    return CACHE_DIR / f"{distro}-{recipe_hash(distro, packages)}"


def parse_packages(text: str) -> list[str]:
    """--packages a,b,c: Debian package names baked into the base disk (a golden image)."""
    names = sorted({n.strip() for n in (text or "").split(",") if n.strip()})
    bad = [n for n in names if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", n)]
    if bad:
        raise LabError(f"--packages takes Debian package names separated by commas, got {bad}")
    return names


def key_param(pubkey: str) -> str:
    """An OpenSSH public key as one kernel command line word: `type:blob` (comment dropped)."""
    fields = pubkey.split()
    if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-")):
        raise LabError(f"not an OpenSSH public key: {pubkey[:40]!r}")
    return f"{fields[0]}:{fields[1]}"


def kernel_cmdline(hostname: str, pubkey: str) -> str:
    return (f"root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname={hostname} "
            f"fleetvm.sshkey={key_param(pubkey)}")


def vm_paths(name: str, host_name: str) -> dict:
    base = fleetlab.lab_dir(name)
    return {"disk": base / f"{host_name}.qcow2", "pid": base / f"{host_name}.pid",
            "console": base / f"{host_name}.console.log"}


def qemu_argv(host: Host, image: Path, paths: dict, cmdline: str, memory: int,
              cpus: int) -> list[str]:
    """The qemu command line of one host: TCG (nested KVM does not boot guests here),
    virtio disk and NIC, SSH forwarded from a 127.0.0.1 port, serial console to a file."""
    return ["qemu-system-x86_64", "-name", host.container,
            "-accel", "tcg,thread=multi", "-cpu", "max", "-m", str(memory), "-smp", str(cpus),
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", cmdline,
            # a throwaway overlay: the guest's flushes need not reach this machine's disk
            "-drive", f"file={paths['disk']},if=virtio,format=qcow2,cache=unsafe",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{host.port}-:22",
            "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
            "-display", "none", "-serial", f"file:{paths['console']}",
            "-pidfile", str(paths["pid"]), "-daemonize"]


def is_vm_process(cmdline: bytes, disk: Path) -> bool:
    """Whether /proc/PID/cmdline belongs to the qemu that runs `disk` (pids get reused)."""
    args = cmdline.split(b"\0")
    return bool(args) and args[0].endswith(b"qemu-system-x86_64") and \
        f"file={disk},".encode() in cmdline


def missing_tools() -> dict:
    return {tool: pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None
            and not Path("/usr/sbin", tool).exists() and not Path("/sbin", tool).exists()}


# ---------------------------------------------------------------- doctor and image
def cmd_doctor(args):
    missing = missing_tools()
    if missing and args.install:
        packages = sorted(set(missing.values()))
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise LabError(f"missing {', '.join(sorted(missing))}: install the Debian packages "
                           f"{' '.join(packages)} (needs root and apt-get)")
        log("installing " + " ".join(packages))
        env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
        run(env_cmd + ["apt-get", "update", "-qq"], timeout=600)
        run(env_cmd + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            timeout=1200)
        missing = missing_tools()
    if missing:
        raise LabError(f"missing {', '.join(sorted(missing))}; install the Debian packages: "
                       f"apt-get install --no-install-recommends "
                       f"{' '.join(sorted(set(missing.values())))}")
    log("qemu-system-x86_64, qemu-img, debootstrap, mkfs.ext4 and ssh are present")


def build_image(distro: str, packages=()) -> Path:
    """The base disk, kernel and initrd of `distro` (with `packages` baked in), built once per
    recipe hash."""
    if distro not in VM_DISTROS:
        raise LabError(f"no VM image for {distro!r}; VM distros: {', '.join(VM_DISTROS)}")
    final = image_dir(distro, packages)
    if (final / "base.qcow2").exists():
        return final
    if os.geteuid() != 0:
        raise LabError("building the VM base disk needs root (debootstrap)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log(f"building {final.relative_to(REPO)} with debootstrap (a few minutes)")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".build-{distro}-", dir=CACHE_DIR))
    try:
        root = work / "root"
        run(["debootstrap", "--variant=minbase",
             "--include=" + ",".join(fleetlab.BASE_PACKAGES + VM_PACKAGES + list(packages)),
             VM_DISTROS[distro], str(root), DEBIAN_MIRROR], timeout=2400)
        _customise_root(root, VM_DISTROS[distro])
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise LabError(f"debootstrap left no kernel or initrd in {root / 'boot'}")
        shutil.copy2(kernels[-1], work / "vmlinuz")
        shutil.copy2(initrds[-1], work / "initrd.img")
        raw = work / "disk.raw"
        run(["mkfs.ext4", "-q", "-L", "fleetvm-root", "-d", str(root), str(raw), DISK_SIZE],
            timeout=900)
        run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")],
            timeout=900)
        raw.unlink()
        shutil.rmtree(root)
        (work / "recipe.json").write_text(json.dumps(
            {"distro": distro, "hash": recipe_hash(distro, packages), "packages": list(packages),
             "kernel": kernels[-1].name}) + "\n")
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"built {final.relative_to(REPO)} in {time.monotonic() - started:.0f} s")
    return final


def _customise_root(root: Path, suite: str):
    """The lab's container customisation (apt sources, first-boot host keys, no machine-id),
    without the unit masks a real kernel does not need, plus what a VM boots with."""
    fleetlab._customise_root(root, suite)
    for unit in fleetlab.MASKED_UNITS:
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
    (root / "etc/fstab").write_text(FSTAB)
    (root / "etc/network/interfaces").write_text(INTERFACES)
    script = root / "usr/local/sbin/fleetvm-provision"
    script.write_text(PROVISION_SCRIPT)
    script.chmod(0o755)
    (root / "etc/systemd/system/fleetvm-provision.service").write_text(PROVISION_UNIT)
    (root / "etc/systemd/system/multi-user.target.wants/fleetvm-provision.service").symlink_to(
        "/etc/systemd/system/fleetvm-provision.service")
    stamps = root / "var/lib/systemd/timers"
    stamps.mkdir(parents=True, exist_ok=True)
    for stamp in APT_TIMER_STAMPS:
        (stamps / stamp).touch()


def cmd_image(args):
    cmd_doctor(argparse.Namespace(install=True))
    for distro in args.distro or list(VM_DISTROS):
        build_image(distro, parse_packages(args.packages))


# ---------------------------------------------------------------- VMs
def vm_pid(name: str, host_name: str) -> int | None:
    """The pid of the host's running qemu, or None."""
    paths = vm_paths(name, host_name)
    try:
        pid = int(paths["pid"].read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if is_vm_process(cmdline, paths["disk"]) else None


def start_vm(name: str, host: Host, image: Path, pubkey: str, memory: int, cpus: int):
    paths = vm_paths(name, host.name)
    if not paths["disk"].exists():
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "base.qcow2"),
             "-F", "qcow2", str(paths["disk"])])
    paths["console"].unlink(missing_ok=True)
    run(qemu_argv(host, image, paths, kernel_cmdline(host.name, pubkey), memory, cpus),
        timeout=60)


def stop_vm(name: str, host_name: str, timeout: float = 20.0):
    pid = vm_pid(name, host_name)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while vm_pid(name, host_name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if vm_pid(name, host_name) is not None:
            os.kill(pid, signal.SIGKILL)
    vm_paths(name, host_name)["pid"].unlink(missing_ok=True)


def console_tail(name: str, host_name: str, lines: int = 15) -> str:
    path = vm_paths(name, host_name)["console"]
    if not path.exists():
        return "(no console output)"
    text = path.read_text(errors="replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])


def wait_for_boot(name: str, host: Host, key: Path, timeout: float = BOOT_TIMEOUT) -> float:
    started = time.monotonic()
    try:
        fleetlab.wait_for_ssh(host, key, False, timeout=timeout)
    except LabError as exc:
        alive = "running" if vm_pid(name, host.name) else "no longer running"
        raise LabError(f"{exc}\nqemu is {alive}; last console lines of {host.name}:\n"
                       f"{console_tail(name, host.name)}") from exc
    return time.monotonic() - started


def ssh(host: Host, key: Path, *command: str, timeout: float = 60):
    return run(fleetlab.ssh_base(key, host.port) + [f"{ADMIN_USER}@127.0.0.1", *command],
               check=False, timeout=timeout)


def load_state(name: str) -> tuple[dict, list[Host]]:
    path = fleetlab.lab_dir(name) / "state.json"
    if not path.exists():
        raise LabError(f"VM lab {name!r} does not exist; run 'fleetvm.py up --name {name}'")
    state = json.loads(path.read_text())
    if not state.get("vm"):
        raise LabError(f"lab {name!r} is a container lab; use tools/fleetlab.py for it")
    return state, [Host(**h) for h in state["hosts"]]


def save_state(name: str, updates: dict):
    path = fleetlab.lab_dir(name) / "state.json"
    state = json.loads(path.read_text())
    state.update(updates)
    path.write_text(json.dumps(state, indent=2))


def cmd_up(args):
    name = args.name
    hosts = fleetlab.plan_hosts(name, fleetlab.host_specs(args), args.port_base)
    unsupported = sorted({h.distro for h in hosts if h.distro not in VM_DISTROS})
    if unsupported:
        raise LabError(f"no VM image for {', '.join(unsupported)}; VM distros: "
                       f"{', '.join(VM_DISTROS)}")
    if args.memory < 512 or args.cpus < 1:
        raise LabError(f"--memory must be at least 512 (MiB) and --cpus at least 1, "
                       f"got {args.memory} and {args.cpus}")
    packages = parse_packages(args.packages)
    running = [h.name for h in hosts if vm_pid(name, h.name)]
    if running or (fleetlab.lab_dir(name) / "state.json").exists():
        raise LabError(f"lab {name!r} exists already; run 'fleetvm.py down --name {name}' first")
    cmd_doctor(argparse.Namespace(install=True))
    images = {d: build_image(d, packages) for d in sorted({h.distro for h in hosts})}
    key = fleetlab.ensure_key(name)
    pubkey = key.with_suffix(".pub").read_text().strip()
    for host in hosts:
        host.address = GUEST_ADDRESS
    boot = {}
    try:
        for host in hosts:
            start_vm(name, host, images[host.distro], pubkey, args.memory, args.cpus)
        for host in hosts:
            boot[host.name] = wait_for_boot(name, host, key)
            log(f"{host.name} answered on SSH {boot[host.name]:.0f} s after qemu started")
    except (LabError, KeyboardInterrupt):
        log("start failed; removing what was created")
        teardown(name)
        raise
    path = fleetlab.write_inventory(name, hosts, key, False, SLIRP_GATEWAY,
                                    {"fleetvm_real_kernel": True})
    save_state(name, {"vm": True, "memory": args.memory, "cpus": args.cpus, "packages": packages,
                      "boot_seconds": {h: round(s, 1) for h, s in boot.items()}})
    for host in hosts:
        print(f"{host.name}\t{host.distro}\tssh -i {key} -p {host.port} {ADMIN_USER}@127.0.0.1")
    log(f"inventory written to {path.relative_to(REPO)}")


def boot_id(host: Host, key: Path) -> str:
    proc = ssh(host, key, "cat", "/proc/sys/kernel/random/boot_id")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def cmd_reboot(args):
    _, hosts = load_state(args.name)
    key = fleetlab.lab_dir(args.name) / "id_ed25519"
    chosen = [h for h in hosts if not args.host or h.name in args.host]
    unknown = sorted(set(args.host or []) - {h.name for h in hosts})
    if unknown:
        raise LabError(f"no host {', '.join(unknown)} in lab {args.name!r}")
    for host in chosen:
        before = boot_id(host, key)
        if not before:
            raise LabError(f"{host.name}: no SSH login as {ADMIN_USER} before the reboot")
        started = time.monotonic()
        ssh(host, key, "sudo", "-n", "systemctl", "reboot", timeout=30)
        while boot_id(host, key) in (before, ""):
            if time.monotonic() - started > BOOT_TIMEOUT:
                raise LabError(f"{host.name} did not come back on SSH as {ADMIN_USER} within "
                               f"{BOOT_TIMEOUT:.0f} s of the reboot; last console lines:\n"
                               f"{console_tail(args.name, host.name)}")
            time.sleep(2)
        print(f"{host.name}\trebooted\t{time.monotonic() - started:.0f} s")


def cmd_stop(args):
    _, hosts = load_state(args.name)
    for host in hosts:
        stop_vm(args.name, host.name)
    log(f"lab {args.name!r} stopped; its disks are kept ('start' boots them again)")


def cmd_start(args):
    state, hosts = load_state(args.name)
    key = fleetlab.lab_dir(args.name) / "id_ed25519"
    pubkey = key.with_suffix(".pub").read_text().strip()
    for host in hosts:
        if vm_pid(args.name, host.name) is None:
            if not fleetlab.port_free(host.port):
                raise LabError(f"127.0.0.1:{host.port} of {host.name} is in use")
            image = build_image(host.distro, state.get("packages", []))
            start_vm(args.name, host, image, pubkey, state["memory"], state["cpus"])
    for host in hosts:
        wait_for_boot(args.name, host, key)
    log(f"lab {args.name!r} running")


def teardown(name: str):
    """Stop every VM of the lab and remove its disks, pid files, inventory and state."""
    base = fleetlab.lab_dir(name)
    for pidfile in base.glob("*.pid"):
        stop_vm(name, pidfile.stem)
    for pattern in ("*.qcow2", "*.pid", "*.console.log", "state.json"):
        for path in base.glob(pattern):
            path.unlink()
    (fleetlab.INVENTORY_DIR / ("hosts.yml" if name == "lab" else f"{name}.yml")).unlink(
        missing_ok=True)


def cmd_down(args):
    state = fleetlab.lab_dir(args.name) / "state.json"
    if state.exists() and not json.loads(state.read_text()).get("vm") and \
            not any(fleetlab.lab_dir(args.name).glob("*.qcow2")):
        raise LabError(f"lab {args.name!r} is a container lab; use tools/fleetlab.py down")
    teardown(args.name)
    log(f"VM lab {args.name!r} removed")


def cmd_clean(_args):
    names = sorted({p.parent.name for p in fleetlab.STATE_DIR.glob("*/*.qcow2")})
    for name in names:
        teardown(name)
    log(f"removed {len(names)} VM lab(s)")


def cmd_status(args):
    state, hosts = load_state(args.name)
    for host in hosts:
        pid = vm_pid(args.name, host.name)
        print(f"{host.name}\t{'running pid ' + str(pid) if pid else 'stopped'}\t"
              f"127.0.0.1:{host.port}")
    print(json.dumps(state, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetvm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    doc = sub.add_parser("doctor", help="check (and with --install, install) what VMs need")
    doc.add_argument("--install", action="store_true")
    img = sub.add_parser("image", help="build the base disk when missing")
    img.add_argument("--distro", action="append")
    up = sub.add_parser("up", help="start a VM lab")
    fleetlab.add_host_arguments(up, hosts=1, distros="debian12")
    up.add_argument("--memory", type=int, default=2048, help="MiB per VM")
    up.add_argument("--cpus", type=int, default=2, help="virtual CPUs per VM")
    for cmd in (img, up):
        cmd.add_argument("--packages", default="", metavar="PKG,PKG",
                         help="Debian packages baked into the base disk (its own cached image)")
    reboot = sub.add_parser("reboot", help="reboot hosts and wait until SSH answers again")
    reboot.add_argument("--host", action="append", metavar="NAME")
    named = [up, reboot] + [sub.add_parser(cmd) for cmd in ("stop", "start", "down", "status")]
    for cmd in named:
        cmd.add_argument("--name", default="vm")
    sub.add_parser("clean", help="remove every VM lab")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    handler = {"doctor": cmd_doctor, "image": cmd_image, "up": cmd_up, "reboot": cmd_reboot,
               "stop": cmd_stop, "start": cmd_start, "down": cmd_down, "status": cmd_status,
               "clean": cmd_clean}[args.cmd]
    try:
        handler(args)
    except LabError as exc:
        print(f"fleetvm: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
