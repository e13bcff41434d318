"""Helpers shared by every scenario's testinfra tests."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parent.parent))


def _lab_inventory_path() -> Path:
    return REPO / "inventories" / "lab" / f"m-{os.environ['MOLECULE_SCENARIO_NAME']}.yml"


@pytest.fixture(scope="session")
def lab_vars():
    """The variables the lab tool gives every host (fleetlab_*, the mirror's fleet_*)."""
    text = _lab_inventory_path().read_text()
    return json.loads(text.split("\n", 1)[1])["all"]["vars"]


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
