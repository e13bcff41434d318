#!/usr/bin/env python3
"""Benchmark playbooks/harden.yml on one fresh lab host.

    .venv/bin/python bench/harden.py [--distro debian12] [--keep] [--skip-lynis] [--skip-ssh-audit]

Starts a fresh lab host (tools/fleetlab.py), installs Debian's `lynis` on it, then:

1. Lynis (`lynis audit system --quick`, default profile) and ssh-audit (the .venv's, against
   the host's SSH port) on the fresh host;
2. converges the host with playbooks/harden.yml twice, through the module_counter callback,
   timing each run: the first run hardens, the second is the no-op re-run;
3. Lynis and ssh-audit again.

Prints wall time, module executions and changed tasks per run, its slowest tasks (from
ansible.posix.profile_tasks), the Lynis hardening index before
and after, and ssh-audit's fail/warn counts per category (kex, host keys, ciphers, MACs); writes
the figures as JSON under bench/results/ (not committed). This is a benchmark, not a test: the
deterministic part (module executions of the no-op run) is asserted by molecule/harden_count.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
RESULTS = REPO / "bench" / "results"
SSH_AUDIT_CATEGORIES = ("kex", "key", "enc", "mac")
# a line of profile_tasks' summary: "role : task name ------------- 12.34s"
PROFILE_LINE = re.compile(r"^(\S.*?) -{2,} (\d+\.\d+)s$", re.MULTILINE)


def log(text):
    print(text, file=sys.stderr, flush=True)


def run(cmd, env=None, check=True, capture=True):
    proc = subprocess.run([str(c) for c in cmd], env=dict(os.environ, **(env or {})), cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=capture, text=True, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stdout or "")[-3000:] + (proc.stderr or "")[-3000:] if capture else ""
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(str(c) for c in cmd)}\n{detail}")
    return proc


def fleetlab(*args):
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    return run(sudo + [sys.executable, REPO / "tools" / "fleetlab.py", *args])


class Lab:
    """One fresh lab host and the ways to reach it."""

    def __init__(self, name, distro):
        self.name, self.distro = name, distro
        self.inventory = REPO / "inventories" / "lab" / f"{name}.yml"

    def up(self):
        fleetlab("down", "--name", self.name)
        fleetlab("up", "--name", self.name, "--host", f"h1:{self.distro}")
        state = json.loads((REPO / ".lab" / self.name / "state.json").read_text())
        self.port = state["hosts"][0]["port"]
        # SSH through 127.0.0.1 arrives from the lab's podman gateway: its /24 stays allowed
        self.ssh_networks = [state["gateway"].rsplit(".", 1)[0] + ".0/24"]
        self.key = REPO / ".lab" / self.name / "id_ed25519"

    def down(self):
        fleetlab("down", "--name", self.name)

    def ssh(self, command, check=True):
        return run(["ssh", "-i", self.key, "-p", self.port, "-o", "StrictHostKeyChecking=no",
                    "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                    "-o", "BatchMode=yes", "fleetadmin@127.0.0.1", command], check=check)


def lynis_index(lab):
    """Hardening index of `lynis audit system --quick` (default profile, no skipped tests)."""
    lab.ssh("sudo lynis audit system --quick --no-colors >/dev/null 2>&1 || true")
    report = lab.ssh("sudo cat /var/log/lynis-report.dat").stdout
    match = re.search(r"^hardening_index=(\d+)$", report, re.MULTILINE)
    if not match:
        raise SystemExit("lynis wrote no hardening_index to /var/log/lynis-report.dat")
    return int(match.group(1))


def ssh_audit_counts(port):
    """ssh-audit's fail and warn counts per category, from its JSON output."""
    proc = run([VENV_BIN / "ssh-audit", "-j", "--skip-rate-test", "-p", port, "127.0.0.1"], check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"ssh-audit gave no JSON (exit {proc.returncode}): {proc.stdout[-500:]}"
                         f"{proc.stderr[-500:]}") from None
    return summarize_ssh_audit(data)


def summarize_ssh_audit(data):
    counts = {}
    for category in SSH_AUDIT_CATEGORIES:
        entries = data.get(category) or []
        counts[category] = {
            level: sorted(e["algorithm"] for e in entries if (e.get("notes") or {}).get(level))
            for level in ("fail", "warn")}
    return counts


def converge(lab, label):
    """One harden.yml run through the module_counter callback: wall time and per-host figures."""
    out = RESULTS / f"{lab.name}-{label}-counts.json"
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_COLLECTIONS_PATH": f"{REPO / '.build/collections'}:"
                                       f"{REPO / '.venv/lib/python3.11/site-packages'}",
           "ANSIBLE_CALLBACKS_ENABLED": "fleetforge.fleet.module_counter,ansible.posix.profile_tasks",
           "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "8",
           "FLEET_MODULE_COUNTER_OUTPUT": str(out)}
    started = time.monotonic()
    extra = json.dumps({"linux_hardening_ssh_allowed_networks": lab.ssh_networks})
    proc = run([VENV_BIN / "ansible-playbook", "-i", lab.inventory, "-e", extra,
                REPO / "playbooks" / "harden.yml"], env=env, check=False)
    wall = time.monotonic() - started
    (RESULTS / f"{lab.name}-{label}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"harden.yml failed on the {label} run; see bench/results/{lab.name}-{label}.log")
    figures = json.loads(out.read_text())
    host = figures["hosts"]["h1"]
    return {"wall_seconds": round(wall, 1), "executions": host["executions"],
            "delegated": host["delegated"], "changed": host["changed"],
            "slowest_tasks": slowest_tasks(proc.stdout)}


def slowest_tasks(output):
    """[(task, seconds)] from ansible.posix.profile_tasks' summary at the end of a run."""
    recap = output.rsplit("PLAY RECAP", 1)[-1]
    return [(match.group(1).strip(), float(match.group(2)))
            for match in PROFILE_LINE.finditer(recap)]


def format_ssh_audit(counts):
    return ", ".join(f"{cat} {len(c['fail'])} fail/{len(c['warn'])} warn" for cat, c in counts.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distro", default="debian12", choices=["debian12", "debian13"])
    parser.add_argument("--name", default="bench-harden", help="lab name (default: bench-harden)")
    parser.add_argument("--keep", action="store_true", help="leave the lab host running")
    parser.add_argument("--skip-lynis", action="store_true")
    parser.add_argument("--skip-ssh-audit", action="store_true")
    args = parser.parse_args(argv)
    if not (REPO / "playbooks" / "harden.yml").exists():
        parser.error("playbooks/harden.yml does not exist yet")
    RESULTS.mkdir(parents=True, exist_ok=True)
    lab = Lab(args.name, args.distro)
    result = {"distro": args.distro, "playbook": "playbooks/harden.yml"}
    log(f"starting a fresh {args.distro} lab host ({args.name})")
    lab.up()
    try:
        if not args.skip_lynis:
            log("installing lynis from Debian on the host")
            lab.ssh("sudo DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null && "
                    "sudo DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "
                    "lynis >/dev/null")
            result["lynis_version"] = lab.ssh("sudo lynis show version").stdout.strip()
            result["lynis_before"] = lynis_index(lab)
        if not args.skip_ssh_audit:
            result["ssh_audit_before"] = ssh_audit_counts(lab.port)
        log("first run (hardens)")
        result["first_run"] = converge(lab, "first")
        log("second run (no-op)")
        result["second_run"] = converge(lab, "second")
        if not args.skip_lynis:
            result["lynis_after"] = lynis_index(lab)
        if not args.skip_ssh_audit:
            result["ssh_audit_after"] = ssh_audit_counts(lab.port)
        result["reachable_after"] = lab.ssh("true", check=False).returncode == 0
    finally:
        if not args.keep:
            lab.down()
    path = RESULTS / f"harden-{args.distro}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    report(args, result, path)
    return 0 if result["reachable_after"] else 1


def report(args, result, path):
    print(f"\nplaybooks/harden.yml on one fresh {args.distro} lab host (h1)")
    print(f"{'run':<8} {'wall s':>8} {'module executions':>18} {'delegated':>10} {'changed':>8}")
    for label in ("first_run", "second_run"):
        row = result[label]
        print(f"{label.split('_')[0]:<8} {row['wall_seconds']:>8.1f} {row['executions']:>18} "
              f"{row['delegated']:>10} {row['changed']:>8}")
    for label in ("first_run", "second_run"):
        print(f"slowest tasks of the {label.split('_')[0]} run (ansible.posix.profile_tasks):")
        for task, seconds in result[label]["slowest_tasks"]:
            print(f"  {seconds:7.1f} s  {task}")
    if "lynis_before" in result:
        print(f"Lynis {result['lynis_version']} hardening index: before {result['lynis_before']}, "
              f"after {result['lynis_after']}")
    if "ssh_audit_before" in result:
        print(f"ssh-audit before: {format_ssh_audit(result['ssh_audit_before'])}")
        print(f"ssh-audit after:  {format_ssh_audit(result['ssh_audit_after'])}")
        for cat, levels in result["ssh_audit_after"].items():
            for level, algorithms in levels.items():
                if algorithms:
                    print(f"  after, {cat} {level}: {', '.join(algorithms)}")
    print(f"SSH login after hardening: {'ok' if result['reachable_after'] else 'REFUSED'}")
    print(f"figures written to {path.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
