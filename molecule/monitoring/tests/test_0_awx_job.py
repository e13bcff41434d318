"""playbooks/monitoring.yml (metrics, then logs) as an AWX job runs it: ansible-runner with the
inventory and its group_vars, extra vars only, stdin closed. Runs first, on the freshly converged
fleet; the run also shows that the pki role works once per host although both halves import it."""
from collections import Counter

import pytest
from conftest import lab_checksums

HOSTS = {"mon", "mon13", "ex12", "ex13"}
PKI_ONCE = "Issue and install the host certificate unless this run already did with these settings"


@pytest.fixture(scope="module")
def job(awx_job):
    return awx_job("monitoring.yml", extravars={"node_exporter_checksums": lab_checksums()})


def test_monitoring_job_succeeds_and_changes_nothing(job):
    assert job.status == "successful", job.stdout.read()[-3000:]
    assert job.changed_hosts == {}, job.stats
    assert set(job.stats["ok"]) >= HOSTS


def test_pki_works_once_per_host_in_the_whole_playbook(job):
    started = {host: Counter() for host in HOSTS}
    outcomes = {host: [] for host in HOSTS}
    for event in job.events:
        data = event.get("event_data", {})
        if data.get("role") not in ("pki", "fleetforge.fleet.pki") or data.get("host") not in HOSTS:
            continue
        if event["event"] == "runner_on_start":
            started[data["host"]][data["task"]] += 1
        elif data["task"] == PKI_ONCE and event["event"] in ("runner_on_ok", "runner_on_skipped"):
            outcomes[data["host"]].append(event["event"])
    for host in HOSTS:
        # metrics.yml's pass does the work; log_forwarding.yml's pass skips in its first task
        assert outcomes[host] == ["runner_on_ok", "runner_on_skipped"], (host, outcomes[host])
        assert started[host]["Install the host key"] == 1, (host, started[host])
        # ansible validates the role's arguments at each of the two imports: its own task, not the role's
        twice = {task: n for task, n in started[host].items()
                 if n != 1 and not task.startswith("Validating arguments against arg spec")}
        assert twice == {PKI_ONCE: 2}, (host, started[host])
