"""Read-only probe of what linux_hardening needs to know and report (prints one JSON object).

Run by the role through ansible.builtin.script with the host's Python; it changes nothing.
Arguments: user names whose password ageing and sudo rules are reported, then `--units` and the
systemd units whose state is reported.
"""
import json
import os
import stat
import subprocess
import sys

ENV = dict(os.environ, LC_ALL="C", LANG="C")
MOUNT_POINTS = ("/tmp", "/dev/shm", "/var/tmp")
SUDOERS = ["/etc/sudoers"]
SKIP_TREES = ("/proc", "/sys", "/dev", "/run")
CMDLINE_KEYS = ("audit", "audit_backlog_limit", "apparmor", "security", "lsm")
# Compilers and assemblers Lynis (HRDN-7222) and hardening guides restrict to root.
COMPILERS = ("as", "cc", "c++", "gcc", "g++", "clang", "clang++", "tcc", "rustc", "go")
BIN_DIRS = ("/usr/bin", "/usr/local/bin")
# File integrity and rootkit baselines (their absence starts the first initialisation).
BASELINES = {"aide": ("/var/lib/aide/aide.db", "/var/lib/aide/aide.db.gz"),
             "rkhunter": ("/var/lib/rkhunter/db/rkhunter.dat",)}


def run(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=False)
    except OSError as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def read(path, default=""):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return default


def container():
    rc, out, _err = run(["systemd-detect-virt", "-c"])
    if rc == 0 and out.strip() not in ("", "none"):
        return out.strip()
    for marker in ("/run/.containerenv", "/.dockerenv"):
        if os.path.exists(marker):
            return os.path.basename(marker).lstrip(".")
    try:
        with open("/proc/1/environ", "rb") as handle:
            for entry in handle.read().split(b"\0"):
                if entry.startswith(b"container="):
                    return entry.split(b"=", 1)[1].decode() or "container"
    except OSError:
        pass
    return ""


def mounts():
    """Mount point -> {mounted, fstype, source, options} from mountinfo (the last mount wins)."""
    found = {p: {"mounted": False, "fstype": "", "source": "", "options": []} for p in MOUNT_POINTS}
    for line in read("/proc/self/mountinfo").splitlines():
        left, _sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2 or fields[4] not in found:
            continue
        options = sorted(set(fields[5].split(",")) | set(tail[2].split(",") if len(tail) > 2 else []))
        found[fields[4]] = {"mounted": True, "fstype": tail[0], "source": tail[1], "options": options}
    return found


def fstab():
    """Mount point -> {source, fstype, options, line} for the temporary file systems in /etc/fstab."""
    entries = {}
    for line in read("/etc/fstab").splitlines():
        fields = line.split()
        if len(fields) >= 4 and not fields[0].startswith("#") and fields[1] in MOUNT_POINTS:
            entries[fields[1]] = {"source": fields[0], "fstype": fields[2],
                                  "options": fields[3].split(","), "line": line}
    return entries


def suid_sgid():
    """Set-user-ID and set-group-ID files on the root file system (find / -xdev -perm /6000)."""
    root_dev = os.lstat("/").st_dev
    hits = []
    for top, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in SKIP_TREES
                   and os.lstat(os.path.join(top, d)).st_dev == root_dev]
        for name in files:
            path = os.path.join(top, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                hits.append(path)
    return sorted(hits)


def nopasswd():
    files = SUDOERS + sorted(os.path.join("/etc/sudoers.d", f) for f in os.listdir("/etc/sudoers.d")) \
        if os.path.isdir("/etc/sudoers.d") else SUDOERS
    lines = []
    for path in files:
        for line in read(path).splitlines():
            if "NOPASSWD" in line and not line.lstrip().startswith("#"):
                lines.append(f"{path}: {line.strip()}")
    return lines


def shadow():
    """Users with a usable password and their ageing fields."""
    users = []
    for line in read("/etc/shadow").splitlines():
        fields = line.split(":")
        if len(fields) < 8 or not fields[1].startswith("$"):
            continue
        users.append({"user": fields[0], "min_days": fields[3], "max_days": fields[4],
                      "warn_days": fields[5], "inactive": fields[6]})
    return users


def audit_rules():
    rc, out, err = run(["auditctl", "-l"])
    if rc != 0:
        return {"loaded": None, "error": (err or out).strip()}
    return {"loaded": [r for r in out.splitlines() if r.strip() and r.strip() != "No rules"], "error": ""}


def units(names):
    """systemd unit -> {enabled, active} (is-enabled/is-active words; 'missing' without the unit)."""
    found = {}
    for name in names:
        rc, out, _err = run(["systemctl", "is-enabled", name])
        enabled = out.strip() or ("missing" if rc else "")
        rc, out, _err = run(["systemctl", "is-active", name])
        found[name] = {"enabled": enabled, "active": out.strip()}
    return found


def compilers():
    """Real files (symbolic links resolved) of the compilers found in the binary directories."""
    real = set()
    for directory in BIN_DIRS:
        for name in COMPILERS:
            path = os.path.join(directory, name)
            if os.path.exists(path):
                real.add(os.path.realpath(path))
    return sorted(real)


def home_dirs():
    """Home directories of interactive users (UID >= 1000, a login shell) that exist."""
    homes = set()
    for line in read("/etc/passwd").splitlines():
        fields = line.split(":")
        if len(fields) < 7 or not fields[2].isdigit() or int(fields[2]) < 1000 or int(fields[2]) == 65534:
            continue
        if fields[6].endswith(("nologin", "false")) or fields[5] in ("", "/") or not os.path.isdir(fields[5]):
            continue
        homes.add(fields[5])
    return sorted(homes)


def packages():
    """Removed packages whose configuration stays (dpkg state rc), and pending security updates."""
    if not os.path.exists("/usr/bin/dpkg-query"):
        return {"residual_config": [], "security_updates": []}
    _rc, out, _err = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n"])
    residual = sorted(line.split()[1] for line in out.splitlines()
                      if line.startswith("rc ") and len(line.split()) > 1)
    # what `apt-get upgrade` would take from a security suite (the same test as Lynis PKGS-7392)
    _rc, out, _err = run(["apt-get", "--simulate", "-o", "Debug::NoLocking=1", "upgrade"])
    updates = sorted({line.split()[1] for line in out.splitlines()
                      if line.startswith("Inst ") and "-security" in line})
    return {"residual_config": residual, "security_updates": updates}


def aide_checksums():
    """The value of AIDE's `Checksums =` group in its main configuration (None without AIDE)."""
    for path in ("/etc/aide/aide.conf", "/etc/aide.conf"):
        for line in read(path).splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == "Checksums":
                return value.strip()
    return None


def main():
    args = sys.argv[1:]
    exempt, unit_names = (args[:args.index("--units")], args[args.index("--units") + 1:]) \
        if "--units" in args else (args, [])
    rc, _out, err = run(["nft", "list", "tables"])
    apparmor = read("/sys/module/apparmor/parameters/enabled").strip()
    cmdline = read("/proc/cmdline").split()
    facts = {
        "container": container(),
        "nft_usable": rc == 0,
        "nft_error": err.strip(),
        "efi": os.path.isdir("/sys/firmware/efi") or os.path.ismount("/boot/efi"),
        "apparmor_enabled": apparmor == "Y",
        "cmdline": [w for w in cmdline if w.split("=")[0] in CMDLINE_KEYS],
        "mounts": mounts(),
        "fstab": fstab(),
        "suid_sgid": suid_sgid(),
        "sudo_nopasswd": nopasswd(),
        "shadow_users": shadow(),
        "audit": audit_rules(),
        "pam": {name: read("/etc/pam.d/" + name) for name in ("common-auth", "common-account",
                                                              "common-password", "system-auth")},
        "authselect": run(["authselect", "current", "--raw"])[1].split(),
        "exempt": exempt,
        "units": units(unit_names),
        "aide_checksums": aide_checksums(),
        "baselines": {name: any(os.path.exists(p) for p in paths) for name, paths in BASELINES.items()},
        "compilers": [{"path": path} for path in compilers()],
        "home_dirs": [{"path": path} for path in home_dirs()],
        "packages": packages(),
    }
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
