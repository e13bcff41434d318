"""Read-only probe of what linux_hardening needs to know and report (prints one JSON object).

Run by the role through ansible.builtin.script with the host's Python; it changes nothing.
Arguments: user names whose password ageing and sudo rules are reported.
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


def main():
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
        "exempt": sys.argv[1:],
    }
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
