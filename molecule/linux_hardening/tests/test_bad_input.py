"""Bad input fails in preflight, before any change, with the variable named."""
from pathlib import Path

import pytest

CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"
# A change the run would make if the input were accepted: the banner.
WOULD_CHANGE = '{"linux_hardening_banner": "bad input run"}'


@pytest.mark.parametrize("extra, message", [
    ('{"linux_hardening_ssh_allowed_networks": []}',
     "linux_hardening_ssh_allowed_networks must be a non-empty list"),
    ('{"linux_hardening_ssh_allowed_networks": ["10.0.0.0/33"]}',
     "linux_hardening_ssh_allowed_networks must be a non-empty list"),
    ('{"linux_hardening_workload_profile": "gaming_rig"}', "linux_hardening_workload_profile"),
    ('{"linux_hardening_sysctl_overrides": "net.ipv4.ip_forward=1"}', "linux_hardening_sysctl_overrides"),
    ('{"linux_hardening_firewall_enabled": "sometimes"}', "linux_hardening_firewall_enabled"),
    ('{"linux_hardening_fail2ban_ignore_networks": ["the office"]}',
     "linux_hardening_fail2ban_ignore_networks"),
])
def test_bad_input_fails_before_any_change(host, run_playbook, extra, message):
    before = host.file("/etc/issue").sha256sum
    result = run_playbook(CONVERGE, limit=host.backend.get_hostname(), extra_vars=[extra, WOULD_CHANGE])
    assert result.returncode != 0
    assert message in result.text
    assert host.file("/etc/issue").sha256sum == before
