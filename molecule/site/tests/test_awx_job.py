"""playbooks/site.yml runs as an AWX job would: ansible-runner, extra vars only, no prompts."""
import pytest


@pytest.fixture(scope="module")
def runner_result(awx_job):
    """One job run for every host; stdin closed, so a prompt would fail the job."""
    return awx_job("site.yml", {"fleet_target": "all", "linux_hardening_aide_enabled": False,
                                "linux_hardening_rkhunter_enabled": False})


def test_job_succeeds_without_prompts(runner_result):
    assert runner_result.status == "successful", runner_result.stdout.read()[-3000:]
    assert runner_result.rc == 0


def test_job_on_converged_hosts_changes_nothing(runner_result):
    assert runner_result.changed_hosts == {}, runner_result.stats
    assert set(runner_result.stats["ok"]) >= {"site-d12", "site-d13"}
