"""Monitoring filters: scrape targets, firewall sources, basic-auth hashes."""
import bcrypt
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetforge.fleet.plugins.filter import monitoring as m


@pytest.fixture
def hostvars():
    return {
        "web1": {"ansible_host": "10.0.0.11", "group_names": ["web", "eu"], "fleet_role": "frontend",
                 "placement": {"region": "eu-west-1", "availability_zone": "eu-west-1a"}},
        "db1": {"ansible_host": "10.0.0.21", "group_names": ["db"], "node_exporter_port": 9200,
                "region": "eu-central-1", "fleet_workload_profile": "generic"},
        "v6": {"ansible_host": "fd00::5", "group_names": []},
        "named": {"group_names": ["ungrouped"]},
        "mon": {"ansible_host": "127.0.0.1", "fleetlab_address": "10.89.0.7", "group_names": ["monitoring"],
                "ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}}},
    }


# ------------------------------------------------------------------ scrape_targets
def test_targets_are_sorted_with_address_port_and_meta_labels(hostvars):
    entries = m.scrape_targets(["web1", "db1"], hostvars)
    assert entries == [
        {"targets": ["10.0.0.21:9200"],
         "labels": {"__meta_fleet_hostname": "db1", "__meta_fleet_groups": ",db,",
                    "__meta_fleet_region": "eu-central-1", "__meta_fleet_role": "generic"}},
        {"targets": ["10.0.0.11:9100"],
         "labels": {"__meta_fleet_hostname": "web1", "__meta_fleet_groups": ",eu,web,",
                    "__meta_fleet_region": "eu-west-1", "__meta_fleet_role": "frontend"}},
    ]


@pytest.mark.parametrize("host, address_vars, target", [
    ("v6", ["ansible_host"], "[fd00::5]:9100"),         # IPv6 in brackets
    ("named", ["ansible_host"], "named:9100"),         # no address: the inventory name
    ("mon", ["fleetlab_address", "ansible_host"], "10.89.0.7:9100"),
    ("mon", ["missing", "ansible_host"], "127.0.0.1:9100"),
    ("mon", ["ansible_facts.default_ipv4.address"], "10.0.0.5:9100"),
])
def test_address_is_the_first_variable_found(hostvars, host, address_vars, target):
    [entry] = m.scrape_targets([host], hostvars, address_vars=address_vars)
    assert entry["targets"] == [target]


def test_groups_all_and_ungrouped_are_left_out_and_absent_labels_are_not_invented(hostvars):
    [entry] = m.scrape_targets(["named"], hostvars)
    assert entry["labels"] == {"__meta_fleet_hostname": "named", "__meta_fleet_groups": ""}


def test_duplicate_host_names_give_one_target(hostvars):
    assert len(m.scrape_targets(["web1", "web1"], hostvars)) == 1


def test_custom_labels_and_port_variable(hostvars):
    [entry] = m.scrape_targets(["web1"], hostvars, port_var="other_port", default_port=9999,
                               label_vars={"zone": ["placement.availability_zone"]})
    assert entry["targets"] == ["10.0.0.11:9999"]
    assert entry["labels"]["__meta_fleet_zone"] == "eu-west-1a"
    assert "__meta_fleet_region" not in entry["labels"]


@pytest.mark.parametrize("bad_vars, message", [
    ({"ansible_host": "10.0.0.1; drop"}, "neither an IP address nor a DNS name"),
    ({"ansible_host": "10.0.0.1", "node_exporter_port": 70000}, "is not a TCP port"),
    ({"ansible_host": "10.0.0.1", "node_exporter_port": "http"}, "is not a TCP port"),
])
def test_untrusted_inventory_values_fail(bad_vars, message):
    with pytest.raises(AnsibleFilterError, match=message):
        m.scrape_targets(["bad"], {"bad": bad_vars})


@pytest.mark.parametrize("hosts, kwargs, message", [
    (["ghost"], {}, "not in the inventory"),
    ("web1", {}, "list of host names"),
    (["web1"], {"label_vars": {"bad-name": ["x"]}}, "not a usable label name"),
    (["web1"], {"label_vars": {"hostname": ["x"]}}, "not a usable label name"),
    (["web1"], {"label_vars": {"zone": "placement.region"}}, "must be a list"),
])
def test_bad_arguments_fail(hostvars, hosts, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        m.scrape_targets(hosts, hostvars, **kwargs)


def test_dotted_path_through_a_string_is_absent():
    assert m._lookup({"placement": "eu"}, "placement.region") is None


# ------------------------------------------------------------------ monitoring_sources
def test_sources_prefer_gathered_facts_over_ansible_host(hostvars):
    assert m.monitoring_sources(["mon"], hostvars) == ["10.0.0.5/32"]


def test_sources_fall_back_to_an_ip_ansible_host_and_sort_v4_before_v6(hostvars):
    assert m.monitoring_sources(["v6", "db1", "web1"], hostvars) == \
        ["10.0.0.11/32", "10.0.0.21/32", "fd00::5/128"]


def test_a_monitoring_host_without_an_ip_fails(hostvars):
    with pytest.raises(AnsibleFilterError, match="monitoring host named has no IP address"):
        m.monitoring_sources(["named"], hostvars)


# ------------------------------------------------------------------ basic_auth_hashes
def test_new_password_is_hashed_with_bcrypt():
    result = m.basic_auth_hashes({"prometheus": "s3cret"}, rounds=4)
    assert result["prometheus"].startswith("$2b$04$")
    assert bcrypt.checkpw(b"s3cret", result["prometheus"].encode())


def test_a_hash_that_verifies_is_kept_so_reruns_change_nothing():
    first = m.basic_auth_hashes({"prometheus": "s3cret"}, rounds=4)
    second = m.basic_auth_hashes({"prometheus": "s3cret"}, first, rounds=4)
    assert second == first


def test_a_changed_password_gets_a_new_hash():
    first = m.basic_auth_hashes({"prometheus": "old"}, rounds=4)
    second = m.basic_auth_hashes({"prometheus": "new"}, first, rounds=4)
    assert second["prometheus"] != first["prometheus"]
    assert bcrypt.checkpw(b"new", second["prometheus"].encode())


@pytest.mark.parametrize("existing", [{"prometheus": "plain"}, {"prometheus": "$2b$garbage"}, None])
def test_unusable_existing_hashes_are_replaced(existing):
    result = m.basic_auth_hashes({"prometheus": "pw"}, existing, rounds=4)
    assert bcrypt.checkpw(b"pw", result["prometheus"].encode())


@pytest.mark.parametrize("users, message", [
    ({"a:b": "pw"}, "holds ':'"),
    ({"prometheus": ""}, "empty password"),
    (["prometheus"], "must be a dict"),
])
def test_bad_users_fail(users, message):
    with pytest.raises(AnsibleFilterError, match=message):
        m.basic_auth_hashes(users, rounds=4)


def test_filters_are_registered():
    assert set(m.FilterModule().filters()) == {"scrape_targets", "monitoring_sources", "basic_auth_hashes"}
