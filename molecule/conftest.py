"""Helpers shared by every scenario's testinfra tests."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import testinfra

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parent.parent))


def _lab_inventory_path() -> Path:
    return REPO / "inventories" / "lab" / f"m-{os.environ['MOLECULE_SCENARIO_NAME']}.yml"


def _lab_inventory() -> dict:
    """The lab tool's inventory of the scenario (JSON after one comment line)."""
    return json.loads(_lab_inventory_path().read_text().split("\n", 1)[1])


@pytest.fixture(scope="session")
def lab_vars():
    """The variables the lab tool gives every host (fleetlab_*, the mirror's fleet_*)."""
    return _lab_inventory()["all"]["vars"]


@pytest.fixture(scope="session")
def lab_hosts():
    """Inventory name -> the lab tool's variables of that host (ansible_port, fleetlab_address...)."""
    hosts = {}
    for group in _lab_inventory()["all"]["children"]["lab"]["children"].values():
        hosts.update(group["hosts"])
    return hosts


@pytest.fixture(scope="session")
def lab_host(lab_hosts):
    """Inventory name -> testinfra host, reached through molecule's inventory the way the verifier
    reaches it, built once per name: `lab_host("mon")`, or `lab_host("mon", sudo=True)` to run
    every command as root (as the verifier's own `host` fixture does)."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    built = {}

    def _get(name, *, sudo=False):
        if name not in lab_hosts:
            pytest.fail(f"lab_host: {name!r} is not a host of {_lab_inventory_path()} "
                        f"(its hosts: {', '.join(sorted(lab_hosts))})", pytrace=False)
        if (name, sudo) not in built:
            built[name, sudo] = testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}",
                                                   sudo=sudo)
        return built[name, sudo]
    return _get


@pytest.fixture(scope="session")
def run_playbook():
    """Run a playbook against the scenario's hosts the way converge does."""
    def _run(playbook, limit=None, extra_vars=(), check=False):
        cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
               "-i", str(_lab_inventory_path())]
        if limit:
            cmd += ["--limit", limit]
        for item in extra_vars:
            cmd += ["-e", item]
        if check:
            cmd += ["--check", "--diff"]
        proc = subprocess.run(cmd + [str(playbook)], capture_output=True, text=True,
                              check=False, cwd=REPO)
        # the default callback folds long messages: compare against whitespace-folded text
        proc.text = " ".join((proc.stdout + proc.stderr).split())
        return proc
    return _run


@pytest.fixture(scope="session")
def awx_job(tmp_path_factory):
    """Run a playbook of playbooks/ as an AWX job would: ansible-runner with a private data dir
    (project, inventory with its group_vars, env), extra vars only, stdin closed, so a prompt
    or an input that is not a variable fails the job. Returns ansible-runner's result."""
    import ansible_runner  # only the scenarios that use this fixture need it

    def _run(playbook, extravars=None, timeout=900):
        private = tmp_path_factory.mktemp("awx-job")
        (private / "project").mkdir()
        shutil.copytree(REPO / "playbooks", private / "project" / "playbooks")
        inventory = private / "inventory"
        inventory.mkdir()
        shutil.copy(os.environ["MOLECULE_INVENTORY_FILE"], inventory / "molecule.yml")
        shutil.copy(_lab_inventory_path(), inventory / "lab.yml")
        # An AWX inventory carries its group variables too: the scenario's (molecule writes them
        # next to its inventory) and then the lab's, which win as they do in converge (the lab's
        # inventory comes last on molecule's command line). Files in group_vars/<group>/ load in
        # name order.
        scenario_vars = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
        for kind in ("group_vars", "host_vars"):
            source = scenario_vars / kind
            for item in sorted(source.iterdir()) if source.is_dir() else []:
                target = inventory / kind / item.name
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(item, target / "10-scenario.yml")
        for item in sorted((REPO / "inventories" / "lab" / "group_vars").glob("*.yml")):
            target = inventory / "group_vars" / item.stem
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(item, target / "20-lab.yml")
        (private / "env").mkdir()
        (private / "env" / "envvars").write_text(json.dumps({
            "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True",
        }))
        result = ansible_runner.run(private_data_dir=str(private), playbook=f"playbooks/{playbook}",
                                    extravars=dict(extravars or {}), quiet=True, timeout=timeout)
        # hosts the job changed something on, with the number of changes
        result.changed_hosts = {host: n for host, n in
                                (result.stats or {}).get("changed", {}).items() if n}
        return result
    return _run
