"""The monitoring scenario's hosts by role, and the lab archive's checksum as a user gives it."""
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

# The log delivery checks are shared with molecule/log_forwarding.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "log_forwarding" / "tests"))
from shared_checks import role_fixtures

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
LAB = f"m-{os.environ.get('MOLECULE_SCENARIO_NAME', 'monitoring')}"
VERSION = "1.5.0-lab"
ARCHIVE = f"node_exporter-{VERSION}.linux-amd64.tar.gz"
PUBLISHED = REPO / ".lab" / LAB / "artifacts" / "node_exporter" / f"v{VERSION}" / ARCHIVE
COLLECTOR = "mon"
CLIENTS = ["mon13", "ex12", "ex13"]


def lab_checksums():
    """node_exporter_checksums for the lab archive that converge built and published on the lab's
    mirror, read from the file itself: what a user adds for an internal build (converge passes it
    as a fact; a job that starts from the inventory alone gets it as an extra variable)."""
    return {VERSION: {"amd64": hashlib.sha256(PUBLISHED.read_bytes()).hexdigest()}}


def lab_addresses():
    """Inventory name -> the host's address on the lab network (from the lab tool's inventory;
    the air-gapped hosts have no default route)."""
    inventory = json.loads((REPO / "inventories" / "lab" / f"{LAB}.yml").read_text().split("\n", 1)[1])
    hosts = {}
    for child in inventory["all"]["children"]["lab"]["children"].values():
        for name, hostvars in child["hosts"].items():
            hosts[name] = hostvars["fleetlab_address"]
    return hosts


@pytest.fixture(scope="session")
def addresses():
    return lab_addresses()


collector, clients = role_fixtures(COLLECTOR, CLIENTS)
