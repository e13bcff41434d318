"""Round trips of the no-op re-run of linux_hardening + ssh_hardening (playbooks/harden.yml).

The count is deterministic (same tasks, same loop items, same skips on an unchanged host), so
it is asserted, not benchmarked: at most BUDGET module executions per host, delegated ones
included. bench/harden.py prints the wall time beside the same figures.
"""
import json
import os
from pathlib import Path

import pytest

# 41 since the USBGuard drop-ins (two loop items) that keep its daemon from starting in containers
BUDGET = 41


@pytest.fixture
def counted(host):
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "module_counter.json"
    figures = json.loads(path.read_text())
    name = host.backend.get_hostname()
    assert name in figures["hosts"], f"{path} holds no run on {name}: run converge and idempotence first"
    return figures["hosts"][name]


def test_the_counted_run_is_the_no_op_rerun_of_both_roles(counted):
    assert counted["changed"] == 0 and counted["failed"] == 0, counted
    roles = {task.split(" : ", 1)[0].rsplit(".", 1)[-1] for task in counted["by_task"] if " : " in task}
    assert {"linux_hardening", "ssh_hardening"} <= roles, sorted(counted["by_task"])


def test_no_op_rerun_stays_within_the_module_budget(counted):
    total = counted["executions"] + counted["delegated"]
    by_count = sorted(counted["by_task"].items(), key=lambda item: -item[1])
    breakdown = "\n".join(f"{n:3} {task}" for task, n in by_count)
    assert total <= BUDGET, f"{total} module executions per host (budget {BUDGET}):\n{breakdown}"
