"""Bad input fails before any change, naming the variable; check mode on the converged fleet
reports no change, and with a changed setting shows the diff without writing it."""
import json
from pathlib import Path

import pytest
from conftest import CLIENTS, COLLECTOR
from shared_checks import recap

CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"
ROLE_ONLY = Path(__file__).resolve().parent.parent / "bad_input.yml"
CONFIGS = {COLLECTOR: "/etc/rsyslog.d/10-fleetforge-collector.conf"}
CONFIGS.update(dict.fromkeys(CLIENTS, "/etc/rsyslog.d/60-fleetforge-forward.conf"))
TARGET = "lf-d13"


def _state(target):
    """The target's forwarding rule and the time rsyslog last started, in one round trip."""
    return target.check_output(
        f"sha256sum {CONFIGS[TARGET]}; systemctl show -p ActiveEnterTimestampMonotonic rsyslog")


@pytest.fixture
def target(clients):
    return clients[TARGET]


@pytest.fixture
def before(target):
    return _state(target)


def _unchanged(target, before):
    assert _state(target) == before, "the configuration changed or rsyslog restarted"


@pytest.mark.parametrize("extra, messages", [
    # the argument spec reports every wrong type and choice at once
    ({"log_forwarding_port": "syslog", "log_forwarding_collector_permitted_peers": {"name": "lf-d12"},
      "log_forwarding_tls": "maybe", "log_forwarding_tls_lib": "wolfssl"},
     ["log_forwarding_port", "log_forwarding_collector_permitted_peers", "log_forwarding_tls",
      "log_forwarding_tls_lib"]),
    ({"fleet_log_collector_group": "no_such_group"},
     ["log_forwarding_target is empty: no host in group 'no_such_group'"]),
    ({"log_forwarding_tls_ca_file": "/etc/fleetforge/pki/missing-ca.crt"},
     ["log_forwarding_tls_ca_file: '/etc/fleetforge/pki/missing-ca.crt' is not a file"]),
    ({"log_forwarding_selector": "*.* @@elsewhere"},
     ["log_forwarding_selector must be one rsyslog selector"]),
    ({"log_forwarding_syslog_socket_queue": 5},
     ["log_forwarding_syslog_socket_queue must be 0 (leave the kernel's value) or at least 10"]),
], ids=["types", "no-collector", "missing-ca", "selector", "socket-queue"])
def test_bad_input_fails_before_any_change(run_playbook, target, before, extra, messages):
    result = run_playbook(ROLE_ONLY, limit=TARGET, extra_vars=[json.dumps(extra)])
    assert result.returncode != 0
    for message in messages:
        assert message in result.text, result.text[-3000:]
    assert all(changed == 0 for changed, _ in recap(result).values()), recap(result)
    _unchanged(target, before)


def test_check_mode_on_the_converged_fleet_reports_no_change(run_playbook):
    result = run_playbook(CONVERGE, check=True)
    assert result.returncode == 0, result.text[-3000:]
    assert recap(result) == dict.fromkeys(CONFIGS, (0, 0))


def test_check_mode_shows_a_changed_setting_without_writing_it(run_playbook, target, before):
    result = run_playbook(CONVERGE, limit=TARGET, check=True,
                          extra_vars=[json.dumps({"log_forwarding_resume_interval": 30})])
    assert result.returncode == 0, result.text[-3000:]
    assert '- action.resumeInterval="10"' in result.text and '+ action.resumeInterval="30"' in result.text
    changed, failed = recap(result)[TARGET]
    assert changed >= 1 and failed == 0  # the rule, and the restart it would cause
    _unchanged(target, before)
