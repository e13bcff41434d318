"""On a fresh host the tasks that `--check --diff` reports changed are the tasks the real run
changes, and the check run writes nothing.

The role's packages are installed first (`--tags packages`): what package maintainer scripts do
(enable and start services) cannot be known in check mode, so the package step is compared by
itself as changed in both runs, and the rest of the role on the installed host. Handlers are left
out of the comparison: they are commands and restarts that check mode skips by design.
"""
import json
import os
import subprocess
from pathlib import Path

import yaml

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
CONVERGE = REPO / "molecule" / "linux_hardening" / "converge.yml"
HANDLERS = {h["name"] for h in yaml.safe_load(
    (REPO / "roles" / "linux_hardening" / "handlers" / "main.yml").read_text())}
WATCHED = ["/etc/login.defs", "/etc/pam.d/common-auth", "/etc/issue", "/etc/sudoers.d",
           "/etc/sysctl.d", "/etc/modprobe.d", "/etc/nftables.conf", "/etc/audit"]


def playbook(host, *args):
    inventory = REPO / "inventories" / "lab" / f"m-{os.environ['MOLECULE_SCENARIO_NAME']}.yml"
    # retries: a loaded machine drops an SSH connection now and then; a lockout fails every retry
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_SSH_RETRIES="3")
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-i", str(inventory),
           "--limit", host.backend.get_hostname(), *args, str(CONVERGE)]
    proc = subprocess.run(cmd,
                          capture_output=True, text=True, check=False, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the JSON document comes after whatever other callbacks (profile_tasks) print
    start = proc.stdout.find('{\n    "custom_stats"')
    return json.JSONDecoder().raw_decode(proc.stdout[max(start, 0):])[0]


def changed_tasks(report):
    names = set()
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ", 1)[-1] in HANDLERS:  # "role : name"
                continue
            for result in task["hosts"].values():
                if result.get("changed") or any(r.get("changed") for r in result.get("results", [])):
                    names.add(task["task"]["name"])
    return names


def snapshot(host):
    with host.sudo():
        return host.check_output(
            f"find {' '.join(WATCHED)} -xdev -type f -exec sha256sum {{}} + 2>/dev/null | sort; true")


def test_check_mode_predicts_the_real_run(host):
    packages = playbook(host, "--tags", "packages")
    assert any("Install the packages" in name for name in changed_tasks(packages))

    before = snapshot(host)
    predicted = changed_tasks(playbook(host, "--check", "--diff"))
    assert snapshot(host) == before, "the check run changed files"

    done = changed_tasks(playbook(host, "--diff"))
    assert predicted == done, f"check only: {predicted - done}; real only: {done - predicted}"
    assert len(done) >= 15, done
