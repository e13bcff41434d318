"""The scenario's hosts by role, reached the way molecule's verifier reaches them."""
import os
import re
import time

import pytest
import testinfra

COLLECTOR = "lf-coll"
CLIENTS = ["lf-d12", "lf-d13"]
FLEET_DIR = "/var/log/fleet"


def lab_host(name):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}", sudo=True)


def wait_until(check, timeout=60, step=2):
    """Poll `check` until it returns a true value or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture(scope="session")
def collector():
    return lab_host(COLLECTOR)


@pytest.fixture(scope="session")
def clients():
    return {name: lab_host(name) for name in CLIENTS}


@pytest.fixture(scope="session")
def collector_address(collector):
    return collector.interface.default().addresses[0]


def recap(result):
    """{host: (changed, failed)} from the PLAY RECAP of a run_playbook result."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.text)
    return {m[0]: (int(m[1]), int(m[2]))
            for m in re.findall(r"(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", text)}
