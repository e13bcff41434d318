"""to_toml: a TOML writer checked against hand-written documents and, on Python 3.11+, tomllib."""
import datetime
import sys

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetforge.fleet.plugins.filter.toml import FilterModule, to_toml

tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else None


@pytest.mark.parametrize("data, expected", [
    ({"a": 1}, "a = 1\n"),
    ({"a": -7, "b": 0}, "a = -7\nb = 0\n"),
    ({"t": True, "f": False}, "t = true\nf = false\n"),
    ({"x": 1.5}, "x = 1.5\n"),
    ({"s": "plain"}, 's = "plain"\n'),
    ({"s": 'say "hi"'}, 's = "say \\"hi\\""\n'),
    ({"s": "C:\\path\\to"}, 's = "C:\\\\path\\\\to"\n'),
    ({"s": "tab\tnew\nline\r\x01"}, 's = "tab\\tnew\\nline\\r\\u0001"\n'),
    ({"s": "ünïcødé"}, 's = "ünïcødé"\n'),
    ({"l": [1, 2, 3]}, "l = [1, 2, 3]\n"),
    ({"l": ["a", "b"]}, 'l = ["a", "b"]\n'),
    ({"l": []}, "l = []\n"),
    ({"l": [[1, 2], ["x"]]}, 'l = [[1, 2], ["x"]]\n'),
    ({"d": datetime.date(2026, 11, 28)}, "d = 2026-11-28\n"),
    ({"key with space": 1}, '"key with space" = 1\n'),
    ({"io.containerd.x": 1}, '"io.containerd.x" = 1\n'),
    ({"t": {}}, "[t]\n"),
])
def test_values(data, expected):
    assert to_toml(data) == expected


def test_plain_keys_come_before_tables_and_tables_nest():
    data = {"sub": {"k": "v", "deeper": {"n": 1}}, "version": 2,
            "plugins": {"io.containerd.grpc.v1.cri": {"x": True}}}
    assert to_toml(data) == (
        "version = 2\n"
        "\n[sub]\nk = \"v\"\n"
        "\n[sub.deeper]\nn = 1\n"
        '\n[plugins."io.containerd.grpc.v1.cri"]\nx = true\n'
    )


def test_table_with_only_subtables_has_no_header_of_its_own():
    assert to_toml({"a": {"b": {"c": 1}}}) == "[a.b]\nc = 1\n"


def test_list_of_dicts_is_an_array_of_tables():
    data = {"servers": [{"name": "a", "tags": {"x": 1}}, {"name": "b"}]}
    assert to_toml(data) == ('[[servers]]\nname = "a"\n\n[servers.tags]\nx = 1\n'
                             '\n[[servers]]\nname = "b"\n')


def test_dicts_inside_arrays_are_inline_tables():
    assert to_toml({"l": [{"a": 1}, 2]}) == "l = [{ a = 1 }, 2]\n"


@pytest.mark.parametrize("data, message", [
    ({"a": None}, "a holds NoneType"),
    ({"a": {"b": {1, 2}}}, "a.b holds set"),
    ({1: "x"}, "key 1 under the top level must be a string"),
    (["not", "a", "dict"], "the document must be a dict"),
])
def test_refuses_what_toml_cannot_hold(data, message):
    with pytest.raises(AnsibleFilterError, match=message):
        to_toml(data)


ROUND_TRIP = [
    {"version": 2, "root": "/var/lib/containerd", "disabled_plugins": [],
     "plugins": {"io.containerd.grpc.v1.cri": {
         "sandbox_image": "registry.k8s.io/pause:3.10",
         "containerd": {"runtimes": {"runc": {"runtime_type": "io.containerd.runc.v2",
                                              "options": {"SystemdCgroup": True}}}},
         "registry": {"config_path": "/etc/containerd/certs.d"}}}},
    {"server": "https://registry-1.docker.io",
     "host": {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"], "skip_verify": False,
                                        "header": {"Authorization": ["Basic Zm9vOmJhcg=="]}}}},
    {"s": 'q"uo\\te\n\t\x7f', "nested": {"a b": {"c.d": [1, -2, 3]}}, "f": -0.25, "big": 2**62},
    {"arr": [{"x": 1, "sub": {"y": [True, False]}}, {"x": 2}], "after": {"z": "w"}},
]


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
@pytest.mark.parametrize("data", ROUND_TRIP)
def test_round_trip_through_tomllib(data):
    assert tomllib.loads(to_toml(data)) == data


def test_filter_is_registered():
    assert FilterModule().filters()["to_toml"] is to_toml
