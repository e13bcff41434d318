"""Bad input fails before any change, naming the variable; a configuration containerd cannot
load never replaces the running one; check mode on the converged host changes nothing."""
import json
from pathlib import Path

import pytest

CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"
CONFIG = "/etc/containerd/config.toml"
# The checks do not depend on the distribution: one host keeps the scenario short.
BAD_INPUT_HOST = "ctd12"


@pytest.fixture
def one_host(host):
    if host.backend.get_hostname() != BAD_INPUT_HOST:
        pytest.skip(f"bad input is tried on {BAD_INPUT_HOST} only")
    return host


@pytest.fixture
def before(host):
    with host.sudo():
        return {"config": host.file(CONFIG).sha256sum,
                "hosts": host.file("/etc/containerd/certs.d/docker.io/hosts.toml").sha256sum,
                "since": host.run("systemctl show -p ActiveEnterTimestampMonotonic containerd").stdout}


def _unchanged(host, before):
    since = "systemctl show -p ActiveEnterTimestampMonotonic containerd"
    with host.sudo():
        assert host.file(CONFIG).sha256sum == before["config"]
        assert host.file("/etc/containerd/certs.d/docker.io/hosts.toml").sha256sum == before["hosts"]
        # not restarted either
        assert host.run(since).stdout == before["since"]
    assert host.service("containerd").is_running


@pytest.mark.parametrize("extra, message", [
    ({"containerd_install_method": "tarball"}, "containerd_install_method"),
    ({"containerd_version": "2.0.7", "containerd_config_schema": 2},
     "containerd_config_schema 2 does not fit containerd_version 2.0.7"),
    ({"containerd_registries": [{"name": "docker.io", "mirrors": [{"url": "mirror.internal:5000"}]}]},
     "containerd_registries entry 'docker.io'"),
    ({"containerd_disabled_plugins": ["io.containerd.grpc.v1.cri"]}, "must not disable the CRI plugin"),
    ({"containerd_install_method": "static", "containerd_version": "9.9.9"},
     "a checksum for containerd 9.9.9"),
], ids=["method", "schema-vs-version", "mirror-url", "cri-off", "checksum"])
def test_bad_input_fails_before_any_change(one_host, run_playbook, before, extra, message):
    host = one_host
    result = run_playbook(CONVERGE, limit=host.backend.get_hostname(), extra_vars=[json.dumps(extra)])
    assert result.returncode != 0
    assert message in result.text, result.text[-2000:]
    assert "changed=0" in result.text
    _unchanged(host, before)


def test_config_containerd_refuses_never_replaces_the_running_one(one_host, run_playbook, before):
    host = one_host
    # passes every check of the role (overrides are free-form) but containerd cannot load it
    bad = {"containerd_config_overrides": {"plugins": {"io.containerd.grpc.v1.cri": {"sandbox_image": 5}}}}
    result = run_playbook(CONVERGE, limit=host.backend.get_hostname(), extra_vars=[json.dumps(bad)])
    assert result.returncode != 0
    assert "containerd refused the rendered config.toml" in result.text
    assert "Can't convert 5(int64) to string" in result.text, result.text[-2000:]
    _unchanged(host, before)


def test_check_mode_on_the_converged_host_reports_no_change(host, run_playbook):
    result = run_playbook(CONVERGE, limit=host.backend.get_hostname(), check=True)
    assert result.returncode == 0, result.text[-2000:]
    assert "changed=0" in result.text and "failed=0" in result.text
