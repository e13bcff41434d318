"""Bad input fails before any change naming the variable; a daemon.json dockerd refuses never reaches
a restart; check mode on the converged host reports nothing to do.

The playbook runs cover both hosts at once and run side by side (session fixture); the tests read
their host's part."""
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"
PASSWORD = "lab-only-Secr3t"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BAD_INPUT = {
    "preflight": ('{"docker_registry_mirrors": ["mirror.internal:5000"]}',
                  "docker_registry_mirrors must hold http(s) URLs, got mirror.internal:5000"),
    "argument_spec": ('{"docker_cgroup_driver": "cgroupv3"}',
                      "docker_cgroup_driver must be one of: systemd, cgroupfs"),
}


def plain(result):
    """The run's output without colours (molecule forces them), whitespace folded."""
    return " ".join(ANSI.sub("", result.stdout + result.stderr).split())


def recap(result, host):
    """(ok, changed, failed) of the host's PLAY RECAP line."""
    name = host.backend.get_hostname()
    text = plain(result)
    match = re.search(re.escape(name) + r" : ok=(\d+) changed=(\d+) unreachable=\d+ failed=(\d+)", text)
    assert match, text[-2000:]
    return tuple(int(n) for n in match.groups())


def daemon_config(host):
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def docker_started_at(host):
    with host.sudo():
        return int(host.check_output(
            "date -d \"$(systemctl show -p ActiveEnterTimestamp --value docker)\" +%s"))


@pytest.fixture(scope="session")
def runs(run_playbook):
    """The refused, check-mode and bad-input runs, side by side: none of them writes anything, so
    they cannot disturb each other (and the scenario stays short)."""
    jobs = {"broken": {"extra_vars": ['{"docker_daemon_extra": {"no-such-option": true}}']},
            "check": {"check": True}}
    jobs.update({case: {"extra_vars": [value]} for case, (value, _msg) in BAD_INPUT.items()})
    started = time.time()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(run_playbook, CONVERGE, **kwargs) for name, kwargs in jobs.items()}
    return started, {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="session")
def broken_run(runs):
    return runs[0], runs[1]["broken"]


@pytest.fixture(scope="session")
def check_run(runs):
    return runs[1]["check"]


@pytest.fixture(scope="session")
def bad_runs(runs):
    return runs[1]


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_before_any_change(host, bad_runs, case):
    result = bad_runs[case]
    assert result.returncode != 0
    assert BAD_INPUT[case][1] in plain(result)
    assert recap(result, host)[1:] == (0, 1)
    assert daemon_config(host)["log-opts"]["max-file"] == "4"


def test_refused_config_fails_naming_the_cause(host, broken_run):
    _started, result = broken_run
    assert result.returncode != 0
    assert recap(result, host)[2] == 1
    text = plain(result)
    assert "refused the new configuration" in text
    assert "the following directives don't match any configuration option: no-such-option" in text


def test_refused_config_leaves_the_old_one_running(host, broken_run):
    started, _result = broken_run
    config = daemon_config(host)
    assert "no-such-option" not in config
    assert config["log-opts"] == {"max-file": "4", "max-size": "20m"}
    assert host.service("docker").is_running
    assert docker_started_at(host) < started
    with host.sudo():
        assert host.check_output("docker info --format '{{.DockerRootDir}}'") == "/var/lib/docker-fleet"


def test_check_mode_on_the_converged_host_changes_nothing(host, check_run):
    assert check_run.returncode == 0, check_run.text[-2000:]
    assert recap(check_run, host)[1] == 0


def test_registry_password_never_reaches_the_output(broken_run, check_run):
    for result in (broken_run[1], check_run):
        assert PASSWORD not in result.stdout + result.stderr
