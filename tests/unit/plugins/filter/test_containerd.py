"""containerd filters: config.toml data for schema 2 and 3, hosts.toml per registry, CA files.

Schema 3 (containerd 2.x) cannot be run here: its rendered output is checked against the
plugin layout containerd 2.0 documents (io.containerd.cri.v1.images / .runtime)."""
import base64
import sys

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetforge.fleet.plugins.filter.containerd import (
    FilterModule,
    containerd_config,
    containerd_hosts,
    containerd_registry_cas,
    deep_merge,
)
from ansible_collections.fleetforge.fleet.plugins.filter.toml import to_toml

CERTS = "/etc/containerd/certs.d"


@pytest.fixture
def settings():
    return {"schema": 2, "root": "/var/lib/containerd", "state": "/run/containerd",
            "sandbox_image": "registry.k8s.io/pause:3.10", "snapshotter": "overlayfs",
            "systemd_cgroup": True, "certs_dir": CERTS, "cni_bin_dir": "/usr/lib/cni",
            "cni_conf_dir": "/etc/cni/net.d", "runtimes": [], "default_runtime": "runc",
            "disabled_plugins": [], "overrides": {}}


def test_schema_2_keeps_cri_in_one_plugin(settings):
    config = containerd_config(settings)
    assert config["version"] == 2 and config["disabled_plugins"] == []
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10"
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["containerd"]["default_runtime_name"] == "runc"
    assert cri["containerd"]["runtimes"]["runc"] == {"runtime_type": "io.containerd.runc.v2",
                                                     "options": {"SystemdCgroup": True}}
    assert cri["registry"] == {"config_path": CERTS}
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}
    assert list(config["plugins"]) == ["io.containerd.grpc.v1.cri"]


def test_schema_3_splits_images_and_runtime(settings):
    settings["schema"] = 3
    config = containerd_config(settings)
    assert config["version"] == 3
    assert set(config["plugins"]) == {"io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"}
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["snapshotter"] == "overlayfs"
    assert images["pinned_images"] == {"sandbox": "registry.k8s.io/pause:3.10"}
    assert images["registry"] == {"config_path": CERTS}
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"] == {"SystemdCgroup": True}
    assert runtime["cni"]["bin_dir"] == "/usr/lib/cni"


def test_schema_3_rendered_toml(settings):
    settings.update(schema=3, systemd_cgroup=False)
    text = to_toml(containerd_config(settings))
    assert text.startswith("version = 3\n")
    assert ('\n[plugins."io.containerd.cri.v1.images".pinned_images]\n'
            'sandbox = "registry.k8s.io/pause:3.10"\n') in text
    assert ('\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]\n'
            "SystemdCgroup = false\n") in text
    assert "io.containerd.grpc.v1.cri" not in text


def test_additional_runtimes_and_default(settings):
    settings["runtimes"] = [
        {"name": "runsc", "runtime_type": "io.containerd.runsc.v1"},
        {"name": "kata", "runtime_type": "io.containerd.kata.v2", "runtime_path": "/opt/kata/bin/shim",
         "privileged_without_host_devices": True, "pod_annotations": ["io.katacontainers.*"],
         "options": {"ConfigPath": "/etc/kata/configuration.toml"}},
    ]
    settings["default_runtime"] = "kata"
    runtimes = containerd_config(settings)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert runtimes["default_runtime_name"] == "kata"
    assert list(runtimes["runtimes"]) == ["runc", "runsc", "kata"]
    assert runtimes["runtimes"]["runsc"] == {"runtime_type": "io.containerd.runsc.v1"}
    assert runtimes["runtimes"]["kata"] == {
        "runtime_type": "io.containerd.kata.v2", "runtime_path": "/opt/kata/bin/shim",
        "pod_annotations": ["io.katacontainers.*"], "privileged_without_host_devices": True,
        "options": {"ConfigPath": "/etc/kata/configuration.toml"}}


@pytest.mark.parametrize("change, message", [
    ({"schema": 4}, "schema must be one of"),
    ({"schema": "2"}, "schema must be one of"),
    ({"default_runtime": "kata"}, "default runtime 'kata' is not one of"),
    ({"runtimes": [{"name": "x"}]}, "needs a name and a runtime_type"),
])
def test_refuses_bad_settings(settings, change, message):
    settings.update(change)
    with pytest.raises(AnsibleFilterError, match=message):
        containerd_config(settings)


def test_overrides_merge_key_by_key(settings):
    cri = {"enable_selinux": True, "containerd": {"snapshotter": "native"}}
    settings["overrides"] = {"plugins": {"io.containerd.grpc.v1.cri": cri},
                             "grpc": {"address": "/run/containerd/containerd.sock"}}
    config = containerd_config(settings)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["enable_selinux"] is True
    assert cri["containerd"]["snapshotter"] == "native"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True  # kept
    assert config["grpc"] == {"address": "/run/containerd/containerd.sock"}


def test_deep_merge_does_not_touch_its_inputs():
    base, override = {"a": {"b": 1}}, {"a": {"c": 2}}
    assert deep_merge(base, override) == {"a": {"b": 1, "c": 2}}
    assert base == {"a": {"b": 1}} and override == {"a": {"c": 2}}


def test_hosts_for_a_mirror_with_credentials_and_ca():
    registry = {"name": "docker.io", "mirrors": [
        {"url": "https://mirror.internal:5000", "username": "u", "password": 'p"w', "ca": "PEM"},
        {"url": "http://10.0.0.5:5000", "capabilities": ["pull"], "skip_verify": True, "override_path": True},
    ]}
    hosts = containerd_hosts(registry, CERTS)
    assert hosts["server"] == "https://registry-1.docker.io"
    assert list(hosts["host"]) == ["https://mirror.internal:5000", "http://10.0.0.5:5000"]
    first = hosts["host"]["https://mirror.internal:5000"]
    assert first["capabilities"] == ["pull", "resolve"]
    assert first["ca"] == f"{CERTS}/docker.io/mirror.internal_5000.crt"
    assert first["header"] == {"Authorization": ["Basic " + base64.b64encode(b'u:p"w').decode()]}
    second = hosts["host"]["http://10.0.0.5:5000"]
    assert second == {"capabilities": ["pull"], "skip_verify": True, "override_path": True}


def test_hosts_for_a_private_registry_without_mirrors():
    hosts = containerd_hosts({"name": "registry.internal:5000", "skip_verify": True, "ca": "PEM",
                              "username": "ci", "password": "x"}, CERTS)
    assert hosts["server"] == "https://registry.internal:5000"
    assert hosts["skip_verify"] is True
    assert hosts["ca"] == f"{CERTS}/registry.internal:5000/registry.internal_5000.crt"
    assert hosts["header"]["Authorization"] == ["Basic " + base64.b64encode(b"ci:x").decode()]
    assert "host" not in hosts


def test_explicit_server_wins():
    assert containerd_hosts({"name": "quay.io", "server": "https://q.internal"}, CERTS) == {
        "server": "https://q.internal"}


def test_hosts_needs_a_name():
    with pytest.raises(AnsibleFilterError, match="needs a name"):
        containerd_hosts({"mirrors": []}, CERTS)


def test_registry_cas_lists_every_ca_once():
    registries = [{"name": "docker.io", "mirrors": [{"url": "https://m:5000", "ca": "A"}, {"url": "http://n"}]},
                  {"name": "r.internal", "ca": "B"}]
    assert containerd_registry_cas(registries, CERTS) == [
        {"path": f"{CERTS}/docker.io/m_5000.crt", "content": "A"},
        {"path": f"{CERTS}/r.internal/r.internal.crt", "content": "B"}]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib needs Python 3.11")
def test_hosts_toml_round_trips():
    import tomllib
    data = containerd_hosts({"name": "docker.io", "mirrors": [{"url": "http://127.0.0.1:5000",
                                                               "username": "a", "password": "b"}]}, CERTS)
    assert tomllib.loads(to_toml(data)) == data


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"containerd_config", "containerd_hosts",
                                             "containerd_registry_cas"}
