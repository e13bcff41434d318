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


BAD_MIRROR = {"containerd_registries": [{"name": "docker.io", "mirrors": [{"url": "mirror.internal:5000"}]}]}


@pytest.mark.parametrize("extra, message", [
    ({"containerd_install_method": "tarball"}, "containerd_install_method"),
    ({"containerd_version": "2.0.7", "containerd_config_schema": 2},
     "containerd_config_schema 2 does not fit containerd_version 2.0.7"),
    (BAD_MIRROR, "containerd_registries entry 'docker.io'"),
    ({"containerd_disabled_plugins": ["io.containerd.grpc.v1.cri"]}, "must not disable the CRI plugin"),
    ({"containerd_install_method": "static", "containerd_version": "9.9.9"},
     "a checksum for containerd 9.9.9"),
], ids=["method", "schema-vs-version", "mirror-url", "cri-off", "checksum"])
def test_preflight_names_the_bad_variable(one_host, run_playbook, monkeypatch, extra, message):
    # only the role's preflight (and its argument spec): each case costs seconds, not a converge
    monkeypatch.setenv("ANSIBLE_RUN_TAGS", "preflight")
    result = run_playbook(CONVERGE, limit=one_host.backend.get_hostname(), extra_vars=[json.dumps(extra)])
    assert result.returncode != 0
    assert message in result.text, result.text[-2000:]


def test_bad_input_fails_before_any_change(one_host, run_playbook, before):
    # the whole converge: preflight stops it before install, configuration or restart
    result = run_playbook(CONVERGE, limit=one_host.backend.get_hostname(),
                          extra_vars=[json.dumps(BAD_MIRROR)])
    assert result.returncode != 0
    assert "containerd_registries entry 'docker.io'" in result.text
    assert "changed=0" in result.text
    _unchanged(one_host, before)


def test_config_containerd_refuses_never_replaces_the_running_one(one_host, run_playbook, before):
    host = one_host
    # passes every check of the role (overrides are free-form) but containerd cannot load it
    bad = {"containerd_config_overrides": {"plugins": {"io.containerd.grpc.v1.cri": {"sandbox_image": 5}}}}
    result = run_playbook(CONVERGE, limit=host.backend.get_hostname(), extra_vars=[json.dumps(bad)])
    assert result.returncode != 0
    assert "containerd refused the rendered config.toml" in result.text
    assert "containerd said: containerd:" in result.text
    assert "Can't convert 5(int64) to string" in result.text, result.text[-2000:]
    _unchanged(host, before)


def test_check_mode_on_the_converged_hosts_reports_no_change(one_host, run_playbook):
    # one run for every host of the scenario
    result = run_playbook(CONVERGE, check=True)
    assert result.returncode == 0, result.text[-2000:]
    # one recap line per host (host names are colour-coded under molecule, counts are not)
    assert result.text.count("unreachable=0") == 2
    assert result.text.count("changed=0") == 2 and result.text.count("failed=0") == 2
