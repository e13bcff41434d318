"""The monitoring scenario's hosts by role, and the lab archive's checksum as a user gives it."""
import hashlib
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


def lab_archive_sha256():
    """sha256 of the lab archive that converge built and published on the lab's mirror."""
    return hashlib.sha256(PUBLISHED.read_bytes()).hexdigest()


def lab_checksums():
    """node_exporter_checksums for the lab archive, read from the file itself: what a user adds
    for an internal build (converge passes it as a fact; a job that starts from the inventory
    alone gets it as an extra variable)."""
    return {VERSION: {"amd64": lab_archive_sha256()}}


@pytest.fixture(scope="session")
def addresses(lab_hosts):
    """Inventory name -> the host's address on the lab network (the air-gapped hosts have no
    default route)."""
    return {name: hostvars["fleetlab_address"] for name, hostvars in lab_hosts.items()}


collector, clients = role_fixtures(COLLECTOR, CLIENTS)
