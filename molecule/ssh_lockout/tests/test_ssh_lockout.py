"""Asking for a configuration that locks the Ansible user out fails, and the user keeps SSH and sudo.

Each case runs the scenario's converge once on all hosts with one bad setting, then checks per
host: the run failed with a message naming what refused the user, the drop-in on the host is
still the last good one, and fleetadmin can still log in over SSH with its key and become root.
"""
import json
import subprocess
from pathlib import Path

import pytest

CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"
DROPIN = "/etc/ssh/sshd_config.d/00-fleetforge.conf"
ROLLBACK_LOG = "/var/lib/fleetforge/sshd/rollback.log"
GOOD = {}  # host -> sha256 of the drop-in after converge (the last good one)
LOG_LINES = {}  # host -> lines in the rollback log before the bad runs

GUARD_CASES = {
    "allowusers": ({"ssh_hardening_extra_settings": {"AllowUsers": "someoneelse"}},
                   "AllowUsers someoneelse does not include fleetadmin"),
    # with passwords enabled, so that sshd -t accepts it and the guard is what says no
    "password-only": ({"ssh_hardening_authentication_methods": "password",
                       "ssh_hardening_password_authentication": True},
                      "AuthenticationMethods password has no alternative that uses publickey only"),
    "port": ({"ssh_hardening_extra_settings": {"Port": 2222}},
             "ListenAddress/Port [::]:2222 0.0.0.0:2222 do not include"),
}
BAD_INPUT = {
    "unknown-crypto-level": (
        {"ssh_hardening_crypto_level": "ultra"},
        "value of ssh_hardening_crypto_level must be one of: modern, compatible, got: ultra"),
    "wrong-type": (
        {"ssh_hardening_max_auth_tries": "many"},
        "argument 'ssh_hardening_max_auth_tries' is of type str and we were unable to convert to int"),
    "rollback-before-reconnect": (
        {"ssh_hardening_rollback_delay": 5},
        "ssh_hardening_rollback_delay (5) must exceed ssh_hardening_reconnect_timeout (20)"),
}
ROLLBACK = {"ssh_hardening_ciphers": ["aes256-cbc"], "ssh_hardening_rollback_delay": 35}


def dropin_sha(host):
    with host.sudo():
        return host.check_output(f"sha256sum {DROPIN}").split()[0]


def admin_can_log_in_and_sudo(host, lab_vars):
    port = host.ansible.get_variables()["ansible_port"]
    proc = subprocess.run(
        ["ssh", "-i", lab_vars["ansible_ssh_private_key_file"], "-p", str(port),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", "fleetadmin@127.0.0.1", "sudo", "-n", "id", "-un"],
        capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "root"


@pytest.fixture(scope="module")
def runs(run_playbook, lab_hosts, lab_host):
    """Run each bad case once on all hosts; before the first, note every host's last good drop-in."""
    for name in lab_hosts:
        other = lab_host(name)
        GOOD[name] = dropin_sha(other)
        with other.sudo():
            LOG_LINES[name] = len(other.run(f"cat {ROLLBACK_LOG}").stdout.splitlines())
    cache = {}

    def _run(case, extra):
        if case not in cache:
            cache[case] = run_playbook(CONVERGE, extra_vars=[json.dumps(extra)])
        return cache[case]
    return _run


@pytest.fixture
def last_good(host, runs):
    return GOOD[host.backend.get_hostname()]


@pytest.mark.parametrize("case", list(GUARD_CASES))
def test_lockout_guard_refuses_before_writing(host, lab_vars, runs, last_good, case):
    extra, refused_by = GUARD_CASES[case]
    result = runs(case, extra)
    assert result.returncode != 0
    name = host.backend.get_hostname()
    assert f"fatal: [{name}]" in result.text
    assert "lockout guard: the new sshd configuration would refuse fleetadmin" in result.text
    assert refused_by in result.text and "nothing was written" in result.text
    assert dropin_sha(host) == last_good
    assert admin_can_log_in_and_sudo(host, lab_vars)


def test_failed_reconnect_is_rolled_back_by_the_host(host, lab_vars, runs, last_good):
    """A cipher the controller's ssh client does not offer passes sshd -t and the guard, then shuts
    the controller out after the reload: the host's timer restores the last good drop-in."""
    result = runs("rollback", ROLLBACK)
    assert result.returncode != 0
    text = result.text[result.text.find("could not reconnect"):][:1500]
    assert "the controller could not reconnect as fleetadmin" in result.text, result.text[-3000:]
    # the role's own diagnosis: molecule's ssh runs with LogLevel=ERROR, which hides ssh's reason
    assert ("Refused by ciphers: the host offers aes256-cbc and this controller's ssh client"
            " proposes none of them") in text, text
    assert "The host restored the last good drop-in" in text, text
    assert dropin_sha(host) == last_good
    with host.sudo():
        log = host.check_output(f"cat {ROLLBACK_LOG}").splitlines()
        ciphers = host.check_output("/usr/sbin/sshd -T -C user=fleetadmin,host=h,addr=10.0.0.1")
    assert "restored the last good sshd configuration (reload exit 0)" in log[-1]
    assert len(log) == LOG_LINES[host.backend.get_hostname()] + 1
    assert "aes256-cbc" not in ciphers
    assert admin_can_log_in_and_sudo(host, lab_vars)


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_fails_before_any_change(host, lab_vars, runs, last_good, case):
    extra, message = BAD_INPUT[case]
    result = runs(case, extra)
    assert result.returncode != 0
    assert message in result.text
    assert "Write the sshd drop-in" not in result.text  # failed before the role reached it
    assert dropin_sha(host) == last_good
    assert admin_can_log_in_and_sudo(host, lab_vars)
