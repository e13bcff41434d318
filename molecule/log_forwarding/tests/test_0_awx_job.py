"""playbooks/log_forwarding.yml as an AWX job runs it: ansible-runner with the inventory and its
group_vars, extra vars only, stdin closed. Runs first, on the freshly converged fleet."""


def test_log_forwarding_job_succeeds_and_changes_nothing(awx_job):
    result = awx_job("log_forwarding.yml")
    assert result.status == "successful", result.stdout.read()[-3000:]
    assert result.changed_hosts == {}, result.stats
    assert {"lf-coll", "lf-d12", "lf-d13"} <= set(result.stats["ok"])
