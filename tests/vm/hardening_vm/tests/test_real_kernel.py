"""On a real kernel (a qemu VM from tools/fleetvm.py), after linux_hardening and a reboot: the
kernel-level controls are in force, and the operator still logs in over SSH and becomes root.

Every expectation is read from what the role wrote (its modprobe, sysctl and audit drop-ins) and
checked against what the running kernel does, after the reboot the session fixture performs."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])
LAB = "m-" + os.environ.get("MOLECULE_SCENARIO_NAME", "hardening_vm")
KEY = REPO / ".lab" / LAB / "id_ed25519"
MODPROBE_DROPIN = "/etc/modprobe.d/60-fleetforge.conf"
SYSCTL_DROPIN = "/etc/sysctl.d/99-zz-fleetforge.conf"
AUDIT_RULES = "/etc/audit/rules.d/60-fleetforge.rules"


def lab_hosts():
    return {h["name"]: h for h in json.loads((REPO / ".lab" / LAB / "state.json").read_text())["hosts"]}


def operator_ssh(port, *command):
    """A fresh SSH login as the operator with the lab key and nothing else (no password, no agent)."""
    return subprocess.run(
        ["ssh", "-i", str(KEY), "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
         "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
         "-o", "ControlMaster=no", "-o", "ControlPath=none",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         "-o", "ConnectTimeout=60", "fleetadmin@127.0.0.1", *command],
        capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="session", autouse=True)
def reboot():
    """Reboot every VM once, before any check runs: what is verified has survived a reboot."""
    hosts = lab_hosts()
    before = {name: operator_ssh(h["port"], "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()
              for name, h in hosts.items()}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "fleetvm.py"), "reboot", "--name", LAB],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    return before


@pytest.fixture
def port(host):
    return lab_hosts()[host.backend.get_hostname()]["port"]


def dropin(host, path):
    content = host.file(path)
    assert content.exists, f"the role wrote no {path}"
    return content.content_string


def test_the_vm_was_rebooted(host, reboot):
    before = reboot[host.backend.get_hostname()]
    assert before, "no boot id was read before the reboot"
    assert host.file("/proc/sys/kernel/random/boot_id").content_string.strip() != before


def test_operator_logs_in_with_the_key_and_becomes_root(port):
    proc = operator_ssh(port, "sudo", "-n", "id", "-u")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_blocked_modules_do_not_load(host):
    blocked = set(re.findall(r"^install\s+(\S+)\s+/bin/(?:false|true)\s*$",
                             dropin(host, MODPROBE_DROPIN), re.M))
    # Debian's cloud kernel ships only some of the blocked modules (no cramfs, hfs, usb-storage):
    # a module that does not exist proves nothing, so only shipped ones are tried.
    shipped = sorted(m for m in blocked if host.run(f"/sbin/modinfo -n {m}").rc == 0)
    assert {"dccp", "sctp", "rds", "tipc"} <= set(shipped), (blocked, shipped)
    for module in shipped:
        # `install NAME /bin/true` makes modprobe succeed without loading; /bin/false fails it:
        # either way the module must not be in the running kernel afterwards.
        host.run(f"/sbin/modprobe {module}")
        assert not host.run(f"grep -qw ^{module} /proc/modules").succeeded, f"{module} loaded"


def test_kernel_settings_hold_after_the_reboot(host):
    wanted = dict(re.findall(r"^\s*([a-z][\w.-]*)\s*=\s*(.*?)\s*$", dropin(host, SYSCTL_DROPIN), re.M))
    # The ones a container never sets (they are this machine's kernel there) are all present.
    assert {"kernel.kptr_restrict", "kernel.yama.ptrace_scope", "kernel.dmesg_restrict",
            "kernel.randomize_va_space", "fs.suid_dumpable"} <= set(wanted)
    # Debian's defaults differ for these two: holding the role's value is not a coincidence.
    assert int(wanted["kernel.kptr_restrict"]) >= 1 and int(wanted["kernel.yama.ptrace_scope"]) >= 1
    running = {key: " ".join(host.run(f"/sbin/sysctl -n {key}").stdout.split()) for key in wanted}
    differ = {key: (value, running[key]) for key, value in wanted.items()
              if " ".join(value.split()) != running[key]}
    assert not differ, f"wanted vs running: {differ}"


def test_auditd_runs_with_the_cis_rules_loaded(host):
    assert host.service("auditd").is_running and host.service("auditd").is_enabled
    text = dropin(host, AUDIT_RULES)
    keys = set(re.findall(r"-k\s+(\S+)", text)) | set(re.findall(r"-F\s+key=(\S+)", text))
    assert {"scope", "time-change", "identity", "perm_mod", "logins", "session",
            "kernel_modules"} <= keys
    with host.sudo():
        loaded = host.check_output("/sbin/auditctl -l")
        status = host.check_output("/sbin/auditctl -s")
    rules = [line for line in loaded.splitlines() if line.startswith(("-a", "-w"))]
    wanted = [line for line in text.splitlines() if line.startswith(("-a", "-w"))]
    assert len(rules) >= len(wanted), f"{len(rules)} rules loaded, {len(wanted)} written"
    missing = {k for k in keys if f"-k {k}" not in loaded and f"key={k}" not in loaded}
    assert not missing, f"keys written but not loaded: {sorted(missing)}"
    assert re.search(r"^enabled [12]$", status, re.M), status


@pytest.mark.parametrize("mount_point", ["/tmp", "/dev/shm"])
def test_temporary_file_systems_are_nodev_nosuid_noexec(host, port, mount_point):
    options = set(host.check_output(f"findmnt -no OPTIONS {mount_point}").split(","))
    assert {"nodev", "nosuid", "noexec"} <= options, options
    # and the kernel enforces it: the operator cannot run a program placed there
    script = f"{mount_point}/fleetvm-noexec-probe"
    proc = operator_ssh(port, f"printf '#!/bin/sh\\necho ran\\n' > {script} && chmod 700 {script}"
                              f" && {script}; rc=$?; rm -f {script}; exit $rc")
    assert proc.returncode != 0 and "ran" not in proc.stdout
    assert "Permission denied" in proc.stderr


def test_apparmor_is_enabled_with_profiles_loaded(host):
    assert host.file("/sys/module/apparmor/parameters/enabled").content_string.strip() == "Y"
    assert host.service("apparmor").is_enabled
    with host.sudo():
        profiles = host.check_output("cat /sys/kernel/security/apparmor/profiles")
    assert profiles.strip(), "AppArmor is enabled but no profile is loaded"


def test_firewall_denies_inbound_by_default_on_the_kernel(host):
    with host.sudo():
        ruleset = host.check_output("/usr/sbin/nft list table inet fleetforge")
    assert re.search(r"hook input priority filter; policy drop;", ruleset), ruleset
    assert host.service("nftables").is_enabled


def test_kernel_level_concerns_change_nothing_on_a_second_run():
    """The real-kernel paths of the modules (running sysctl values, module blocklist, remounts,
    audit rules, nftables) are idempotent: re-run after the reboot, they report no change."""
    proc = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "-i", str(REPO / "inventories" / "lab" / f"{LAB}.yml"),
         "--tags", "sysctl,kernel_modules,mounts,auditd,apparmor,firewall",
         str(Path(__file__).resolve().parents[1] / "converge.yml")],
        capture_output=True, text=True, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    changed, task = [], ""
    for line in proc.stdout.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: ") and task not in changed:
            changed.append(task)
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP"):]
    assert re.search(r"\bchanged=0\b", recap), f"changed on the second run: {changed}"
