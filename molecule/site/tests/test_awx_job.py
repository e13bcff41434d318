"""playbooks/site.yml runs as an AWX job would: ansible-runner, extra vars only, no prompts."""
import json
import os
import shutil
from pathlib import Path

import ansible_runner
import pytest

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])


@pytest.fixture(scope="module")
def runner_result(tmp_path_factory):
    """One job run for every host; stdin closed, so a prompt would fail the job."""
    private = tmp_path_factory.mktemp("awx-job")
    (private / "project").mkdir()
    shutil.copytree(REPO / "playbooks", private / "project" / "playbooks")
    (private / "inventory").mkdir()
    shutil.copy(os.environ["MOLECULE_INVENTORY_FILE"], private / "inventory" / "molecule.yml")
    lab_inventory = REPO / "inventories" / "lab" / f"m-{os.environ['MOLECULE_SCENARIO_NAME']}.yml"
    shutil.copy(lab_inventory, private / "inventory" / "lab.yml")
    # an AWX inventory carries its group variables too (here: the firewall's SSH allow-list)
    shutil.copytree(REPO / "inventories" / "lab" / "group_vars", private / "inventory" / "group_vars")
    (private / "env").mkdir()
    (private / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True",
    }))
    return ansible_runner.run(
        private_data_dir=str(private), playbook="playbooks/site.yml",
        extravars={"fleet_target": "all"}, quiet=True, timeout=900)


def test_job_succeeds_without_prompts(runner_result):
    assert runner_result.status == "successful", runner_result.stdout.read()[-3000:]
    assert runner_result.rc == 0


def test_job_on_converged_hosts_changes_nothing(runner_result):
    stats = runner_result.stats
    assert stats["changed"] == {} or all(v == 0 for v in stats["changed"].values()), stats
    assert set(stats["ok"]) >= {"site-d12", "site-d13"}
