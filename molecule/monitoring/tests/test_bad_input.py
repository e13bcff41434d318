"""Bad input fails before any change, naming the variable; a wrong checksum leaves the old binary running."""
from pathlib import Path

import pytest

PLAYBOOK = Path(__file__).resolve().parent / "bad_input.yml"
CACHED = "/var/cache/fleetforge/node_exporter/node_exporter-1.5.0-lab.linux-amd64.tar.gz"
LAB_CHECKSUM = '{"node_exporter_checksums": {"1.5.0-lab": {"amd64": "%s"}}}'


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


def state(host):
    """What a failed run must leave as it was."""
    with host.sudo():
        return {path: host.file(path).sha256sum if host.file(path).exists else None
                for path in ("/usr/local/bin/node_exporter", "/etc/node_exporter/web.yml",
                             "/etc/systemd/system/node_exporter.service", CACHED)}


def main_pid(host):
    return host.check_output("systemctl show node_exporter -p MainPID --value")


def test_a_wrong_checksum_is_refused_and_the_old_binary_keeps_running(host, name, run_playbook):
    if name != "ex12":
        pytest.skip("ex12 downloads the archive itself")
    before, pid = state(host), main_pid(host)
    result = run_playbook(PLAYBOOK, limit=name, extra_vars=[LAB_CHECKSUM % ("0" * 64)])
    assert result.returncode != 0
    assert "did not match" in result.text
    assert state(host) == before
    assert main_pid(host) == pid and host.service("node_exporter").is_running


@pytest.mark.parametrize("extra, message", [
    ('{"node_exporter_collectors_enabled": ["systemd", "gpu_magic"]}',
     "node_exporter_collectors_enabled / node_exporter_collectors_disabled: unknown collector(s) gpu_magic"),
    ('{"node_exporter_tls_cert_file": ""}',
     "node_exporter_tls_cert_file ('') and node_exporter_tls_key_file ('/etc/fleetforge/pki/host.key') "
     "must both be set"),
    ('{"node_exporter_tls_cert_file": "/etc/fleetforge/pki/missing.crt"}',
     "node_exporter_tls_cert_file: /etc/fleetforge/pki/missing.crt does not exist"),
    ('{"node_exporter_install_method": "archive", "node_exporter_version": "latest"}',
     "node_exporter_version latest has no pinned sha256 for linux-amd64"),
    ('{"node_exporter_install_method": "archive", "node_exporter_version": "1.11.0"}',
     "node_exporter_version 1.11.0 has no pinned sha256 for linux-amd64"),
])
def test_bad_input_fails_before_any_change(host, name, run_playbook, extra, message):
    if name != "ex13":
        pytest.skip("one host is enough")
    before, pid = state(host), main_pid(host)
    result = run_playbook(PLAYBOOK, limit=name, extra_vars=[extra])
    assert result.returncode != 0
    assert message in result.text
    assert state(host) == before
    assert main_pid(host) == pid
