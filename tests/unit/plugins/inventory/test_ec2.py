"""fleetforge.fleet.ec2 against moto_server (a real EC2/STS API) and the fault proxy."""
from __future__ import annotations

import contextlib
import gc
import os

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.utils.display import Display
from conftest import ACCOUNT_A, ACCOUNT_B, BIG_REGION, ROLE_A, ROLE_B, ROLE_DENIED

pytest.importorskip("boto3")

REGIONS = ["us-east-1", "eu-west-1"]
pytestmark = pytest.mark.usefixtures("collection_loader")


@pytest.fixture(autouse=True)
def isolated_aws_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def warnings(monkeypatch):
    seen = []
    original = Display.warning

    def record(self, msg, *args, **kwargs):
        if "fleetforge.fleet.ec2" in str(msg):
            seen.append(str(msg))
        return original(self, msg, *args, **kwargs)

    monkeypatch.setattr(Display, "warning", record)
    return seen


@pytest.fixture
def inventory_file(tmp_path, proxy):
    """write(**options) -> path of a config file pointing at the fault proxy."""
    def write(**options):
        config = {"plugin": "fleetforge.fleet.ec2", "endpoint_url": proxy.url,
                  "aws_access_key": "AKIDTEST", "aws_secret_key": "secret",
                  "regions": REGIONS, "retry_max_attempts": 4}
        config.update(options)
        config = {k: v for k, v in config.items() if v is not None}
        path = tmp_path / "test.fleet_ec2.yml"
        path.write_text(yaml.safe_dump(config))
        return str(path)
    return write


def load_plugin():
    return inventory_loader.get("fleetforge.fleet.ec2")


def parse(path, cache=True):
    plugin = load_plugin()
    inventory = InventoryData()
    assert plugin.verify_file(path)
    plugin.parse(inventory, DataLoader(), path, cache=cache)
    with contextlib.suppress(AttributeError):  # InventoryManager does this after parse()
        plugin.update_cache_if_changed()  # AttributeError: no cache configured
    return inventory


def hostvars(inventory):
    return {name: dict(host.vars) for name, host in inventory.hosts.items()}


def members(inventory, group):
    return {host.name for host in inventory.groups[group].get_hosts()}


def by_instance(inventory, key="instance_id"):
    return {host.vars[key]: name for name, host in inventory.hosts.items()}


# ------------------------------------------------------------------ hosts and names
def test_every_instance_is_one_host_across_two_accounts(fleet, inventory_file, proxy, warnings):
    inventory = parse(inventory_file(assume_roles=[ROLE_A, ROLE_B]))
    expected = fleet.ids(regions=REGIONS, accounts=[ACCOUNT_A, ACCOUNT_B])
    assert set(by_instance(inventory)) == expected
    assert len(inventory.hosts) == len(expected)
    accounts = {h.vars["instance_id"]: h.vars["account_id"] for h in inventory.hosts.values()}
    assert all(accounts[iid] == fleet.instances[iid]["account"] for iid in expected)
    # 8 instances want "db": one keeps it, the others get their instance id appended
    db_hosts = sorted(n for n in inventory.hosts if n.startswith("db"))
    assert len(db_hosts) == 8 and "db" in db_hosts
    for name in db_hosts:
        if name != "db":
            assert name == "db_" + inventory.hosts[name].vars["instance_id"]
    assert len([w for w in warnings if "wanted by several instances" in w]) == 1
    assert proxy.count("AssumeRole") == 2


def test_hostvars_of_one_instance(fleet, inventory_file):
    inventory = parse(inventory_file(regions=["us-east-1"]))
    host = inventory.hosts["web-a-0"].vars
    iid = host["instance_id"]
    wanted = {"Name": "web-a-0", "Env": "prod", "Role": "web"}
    assert fleet.instances[iid]["tags"] == host["tags"] == wanted
    assert host["instance_type"] == "t3.micro"
    assert host["state"] == {"code": 16, "name": "running"}
    assert host["placement"]["region"] == host["region"] == "us-east-1"
    assert host["availability_zone"].startswith("us-east-1")
    assert host["account_id"] == host["owner_id"] == ACCOUNT_A
    assert host["ansible_host"] == host["private_ip_address"]
    for key in ("vpc_id", "subnet_id", "private_dns_name", "launch_time", "image_id"):
        assert host[key], key


def test_untagged_and_stopped_instances_are_hosts(fleet, inventory_file):
    inventory = parse(inventory_file(regions=["eu-west-1"], hostnames=["tag:Name", "instance-id"]))
    names = by_instance(inventory)
    untagged = [iid for iid in fleet.ids(regions=["eu-west-1"], accounts=[ACCOUNT_A])
                if not fleet.instances[iid]["tags"]]
    assert untagged and all(names[iid] == iid for iid in untagged)
    assert inventory.hosts["batch-a"].vars["state"]["name"] == "stopped"


def test_hostname_with_prefix_and_separator(fleet, inventory_file):
    inventory = parse(inventory_file(regions=["eu-west-1"], hostnames=[
        {"name": "tag:Name", "prefix": "tag:Env", "separator": "-"}, "instance-id"]))
    assert "prod-web-a-0" in inventory.hosts and "stage-web-a-2" in inventory.hosts


def test_cloud_data_is_never_templated(fleet, inventory_file):
    inventory = parse(inventory_file(regions=["us-east-1"],
                                     compose={"note": "tags.Note", "name_copy": "tags.Name"}))
    host = inventory.hosts["odd-{{ 7 * 6 }}"].vars
    assert host["note"] == "{{ lookup('env', 'HOME') }}"
    assert host["name_copy"] == "odd-{{ 7 * 6 }}"


# ------------------------------------------------------------------ constructed options
def test_compose_groups_and_keyed_groups(fleet, inventory_file):
    inventory = parse(inventory_file(
        filters={"instance-state-name": "running"},
        hostvars_prefix="ec2_",
        compose={"ansible_user": "'admin'", "env": "ec2_tags.Env | default('none')"},
        groups={"databases": "ec2_instance_type == 'm5.large'",
                "production": "env == 'prod'"},
        keyed_groups=[{"key": "ec2_placement.region", "prefix": "region"},
                      {"key": "ec2_tags.Role", "prefix": "role", "parent_group": "roles"},
                      {"key": "ec2_tags", "prefix": "tag"},
                      {"key": "ec2_tags.Env | default('')", "default_value": "untagged",
                       "prefix": "env"}]))
    running = fleet.ids(regions=["us-east-1", "eu-west-1"], accounts=[ACCOUNT_A], state="running")
    assert set(by_instance(inventory, "ec2_instance_id")) == running
    sample = inventory.hosts["web-a-1"].vars
    assert sample["ansible_user"] == "admin" and sample["env"] == "prod"
    assert "ec2_instance_id" in sample and "instance_id" not in sample
    assert "ansible_host" in sample  # connection variables are never prefixed
    assert len(members(inventory, "databases")) == 4
    assert "web-a-2" not in members(inventory, "production")
    assert len(members(inventory, "region_us_east_1")) + len(
        members(inventory, "region_eu_west_1")) == len(running)
    assert {g.name for g in inventory.groups["roles"].child_groups} == {"role_web", "role_db"}
    assert "web-a-0" in members(inventory, "tag_Env_prod")
    untagged = {n for n, h in inventory.hosts.items() if "Env" not in h.vars["ec2_tags"]}
    assert untagged and members(inventory, "env_untagged") == untagged


def test_include_and_exclude_filters(fleet, inventory_file):
    inventory = parse(inventory_file(
        regions=["us-east-1"], filters={"tag:Role": "db"},
        include_filters=[{"tag:Name": ["web-a-0", "web-a-1"]}],
        exclude_filters=[{"instance-type": "m5.large", "tag:Env": "prod"}]))
    assert set(inventory.hosts) == {"web-a-0", "web-a-1"}


def test_include_filters_alone_list_only_what_they_include(fleet, inventory_file):
    inventory = parse(inventory_file(regions=["us-east-1"],
                                     include_filters=[{"tag:Name": "web-a-0"}, {"tag:Role": "db"}]))
    assert {n for n in inventory.hosts if not n.startswith("db")} == {"web-a-0"}
    assert len(inventory.hosts) == 3  # web-a-0 and the two db instances of us-east-1


def test_strict_compose_error_names_the_host(fleet, inventory_file):
    with pytest.raises(AnsibleError, match="Could not set broken for host"):
        parse(inventory_file(regions=["eu-west-3"], strict=True,
                             compose={"broken": "no_such_variable.attribute"}))
    inventory = parse(inventory_file(regions=["eu-west-3"],
                                     compose={"broken": "no_such_variable.attribute"}))
    assert "broken" not in inventory.hosts["paris-1"].vars


# ------------------------------------------------------------------ partial failure
def test_denied_role_throttled_and_disabled_region_one_warning(fleet, inventory_file, proxy,
                                                               warnings, tmp_path):
    proxy.denied_roles.add(ROLE_DENIED)
    proxy.opt_in_regions.add("ap-south-1")
    proxy.throttle["eu-west-3"] = 2
    path = inventory_file(regions=["us-east-1", "eu-west-3", "ap-south-1"],
                          assume_roles=[ROLE_A, ROLE_DENIED], cache=True,
                          cache_plugin="ansible.builtin.jsonfile",
                          cache_connection=str(tmp_path / "cache"))
    inventory = parse(path)
    expected = fleet.ids(regions=["us-east-1", "eu-west-3"], accounts=[ACCOUNT_A])
    assert set(by_instance(inventory)) == expected  # the throttled region made it
    assert proxy.count("DescribeInstances", "eu-west-3") == 3  # two throttled, then served
    skipped = [w for w in warnings if "skipped" in w]
    assert len(skipped) == 1
    assert ROLE_DENIED in skipped[0] and "AccessDenied" in skipped[0]
    assert f"{ACCOUNT_A}/ap-south-1" in skipped[0] and "OptInRequired" in skipped[0]
    errors = inventory.groups["fleet_ec2_inventory_errors"].vars["fleet_ec2_inventory_errors"]
    assert {e["scope"] for e in errors} == {ROLE_DENIED, f"{ACCOUNT_A}/ap-south-1"}
    assert not list((tmp_path / "cache").glob("*"))  # a partial answer is never cached


def test_strict_errors_fails_on_a_denied_role(inventory_file, proxy, tmp_path):
    proxy.denied_roles.add(ROLE_DENIED)
    cache_dir = tmp_path / "cache"
    with pytest.raises(AnsibleError, match=rf"strict_errors.*{ROLE_DENIED}: AccessDenied"):
        parse(inventory_file(assume_roles=[ROLE_A, ROLE_DENIED, ROLE_B], strict_errors=True,
                             cache=True, cache_plugin="ansible.builtin.jsonfile",
                             cache_connection=str(cache_dir)))
    assert not cache_dir.exists() or not list(cache_dir.glob("*"))


def test_region_still_throttled_after_the_retries_is_skipped(fleet, inventory_file, proxy,
                                                             warnings):
    proxy.throttle["eu-west-1"] = 100
    inventory = parse(inventory_file(assume_roles=[ROLE_A, ROLE_B], retry_max_attempts=2))
    assert proxy.count("DescribeInstances", "eu-west-1") == 4  # 2 attempts x 2 accounts
    assert set(by_instance(inventory)) == fleet.ids(regions=["us-east-1"],
                                                    accounts=[ACCOUNT_A, ACCOUNT_B])
    skipped = [w for w in warnings if "skipped" in w]
    assert len(skipped) == 1 and "RequestLimitExceeded" in skipped[0]
    assert f"{ACCOUNT_A}/eu-west-1" in skipped[0] and f"{ACCOUNT_B}/eu-west-1" in skipped[0]
    proxy.throttle["eu-west-1"] = 100
    with pytest.raises(AnsibleError,
                       match=rf"strict_errors.*{ACCOUNT_A}/eu-west-1.*RequestLimitExceeded"):
        parse(inventory_file(assume_roles=[ROLE_A], retry_max_attempts=2, strict_errors=True))


@pytest.mark.parametrize("workers", [2, 4])
def test_regions_are_queried_in_parallel_up_to_max_workers(fleet, inventory_file, proxy, workers):
    proxy.delay = 1.5  # every DescribeInstances answer takes 1.5 s
    regions = ["us-east-1", "eu-west-1", "eu-west-3", "ap-south-1"]
    inventory = parse(inventory_file(regions=regions, max_workers=workers))
    assert set(by_instance(inventory)) == fleet.ids(regions=regions, accounts=[ACCOUNT_A])
    assert proxy.most_in_flight == workers


@pytest.fixture
def started_readers(monkeypatch):
    """Every PageReaders the plugin starts, kept for the test to inspect."""
    import importlib
    module = importlib.import_module(
        "ansible_collections.fleetforge.fleet.plugins.plugin_utils.page_readers")
    started = []

    class Recorded(module.PageReaders):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(module, "PageReaders", Recorded)
    monkeypatch.setattr(module, "available_cpus", lambda: 4)
    return started


def test_helper_processes_read_the_pages_of_several_regions(fleet, big_region, inventory_file,
                                                            proxy, started_readers):
    regions = ["us-east-1", "eu-west-1", BIG_REGION]
    in_threads = hostvars(parse(inventory_file(regions=regions, parse_workers=0)))
    assert started_readers == []
    pages = proxy.count("DescribeInstances")
    # the processes start once the first requests are out; a round trip of 1 s gives them time
    proxy.delay = 1.0
    by_children = hostvars(parse(inventory_file(regions=regions)))  # default: one per CPU
    assert by_children == in_threads and len(by_children) > 1010
    readers, = started_readers
    assert readers.pages_by_children == proxy.count("DescribeInstances") - pages >= 4
    assert readers.pages_in_thread == 0 and readers.notes == []
    assert readers.children == 0  # stopped once the fetch is over
    parse(inventory_file(regions=regions, parse_workers=1))
    assert len(started_readers) == 2 and started_readers[-1].pages_by_children >= 4
    parse(inventory_file(regions=regions, max_workers=1))  # one thread: nothing to overlap
    assert len(started_readers) == 2


def test_one_region_is_read_in_its_thread(fleet, inventory_file, started_readers):
    parse(inventory_file(regions=["us-east-1"], parse_workers=4))
    assert started_readers == []


def test_garbage_collector_is_paused_while_listing_and_restored(
        fleet, inventory_file, proxy, monkeypatch):
    plugin_class = type(load_plugin())
    fetch = plugin_class._fetch
    seen = []

    def recording_fetch(self, scope):
        seen.append(gc.isenabled())
        return fetch(self, scope)

    monkeypatch.setattr(plugin_class, "_fetch", recording_fetch)
    assert gc.isenabled()
    parse(inventory_file())
    assert seen == [False, False] and gc.isenabled()
    proxy.denied_roles.add(ROLE_DENIED)
    with pytest.raises(AnsibleError, match="strict_errors"):  # a failure restores it too
        parse(inventory_file(assume_roles=[ROLE_A, ROLE_DENIED], strict_errors=True))
    assert gc.isenabled()


# ------------------------------------------------------------------ credentials
def test_credentials_from_a_profile(fleet, inventory_file, proxy, tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.write_text("[fleet]\naws_access_key_id = AKIDPROFILE\n"
                           "aws_secret_access_key = secret\naws_session_token = TOKENPROFILE\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    proxy.known_keys = {"AKIDPROFILE"}  # any other key gets AuthFailure
    inventory = parse(inventory_file(aws_access_key=None, aws_secret_key=None,
                                     aws_profile="fleet", regions=["eu-west-3"]))
    assert "paris-1" in inventory.hosts
    assert proxy.tokens and set(proxy.tokens) == {"TOKENPROFILE"}


def test_credentials_from_the_environment(fleet, inventory_file, proxy, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKENENV")
    proxy.known_keys = {"AKIDENV"}
    inventory = parse(inventory_file(aws_access_key=None, aws_secret_key=None,
                                     regions=["eu-west-3"]))
    assert "paris-1" in inventory.hosts and set(proxy.tokens) == {"TOKENENV"}


def test_explicit_keys_and_session_token(fleet, inventory_file, proxy):
    proxy.known_keys = {"AKIDTEST"}
    inventory = parse(inventory_file(session_token="TOKENOPTION", regions=["eu-west-3"]))
    assert "paris-1" in inventory.hosts and set(proxy.tokens) == {"TOKENOPTION"}


def test_profile_and_keys_are_mutually_exclusive(inventory_file):
    with pytest.raises(AnsibleError, match="mutually exclusive"):
        parse(inventory_file(aws_profile="fleet"))


# ------------------------------------------------------------------ cache
def test_cache_hit_makes_no_api_call(fleet, inventory_file, proxy, tmp_path):
    path = inventory_file(assume_roles=[ROLE_A, ROLE_B], cache=True,
                          cache_plugin="ansible.builtin.jsonfile",
                          cache_connection=str(tmp_path / "cache"),
                          keyed_groups=[{"key": "tags.Env | default('none')", "prefix": "env"}],
                          compose={"short": "instance_id[-4:]"})
    first = parse(path, cache=False)  # ansible-inventory --flush-cache / refresh
    assert proxy.count() > 0
    proxy.requests.clear()
    second = parse(path, cache=True)
    assert proxy.count() == 0
    assert hostvars(second) == hostvars(first)
    assert members(second, "env_prod") == members(first, "env_prod")
    assert len(second.hosts) == len(fleet.ids(regions=REGIONS, accounts=[ACCOUNT_A, ACCOUNT_B]))
    # another configuration is not served from this entry
    path = inventory_file(assume_roles=[ROLE_A, ROLE_B], cache=True,
                          cache_plugin="ansible.builtin.jsonfile",
                          cache_connection=str(tmp_path / "cache"))
    parse(path, cache=True)
    assert proxy.count("DescribeInstances") > 0


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("options, cause", [
    ({"no_such_option": 1}, "unknown option.*no_such_option"),
    ({"filters": ["instance-state-name"]}, r"filters.*(invalid value|Invalid type)"),
    ({"filters": {"tag:Env": {"nested": 1}}}, "filter tag:Env needs a value"),
    ({"include_filters": [{"tag:Env": []}]}, r"include_filters\[0\]: filter tag:Env"),
    ({"hostnames": ["tag:NoSuchTag"]}, "has none of the hostnames sources tag:NoSuchTag"),
    ({"hostnames": ["hostname-of-doom"]}, "unknown source 'hostname-of-doom'"),
    ({"assume_roles": ["not-an-arn"]}, "assume_roles: each entry must be a role ARN"),
    ({"include_filters": ["tag:Env"]}, "include_filters"),
    ({"parse_workers": -1}, "parse_workers must be 0"),
    ({"parse_workers": "many"}, "parse_workers"),
    ({"endpoint_url": "not a url"}, "endpoint_url must be an http:// or https:// URL"),
    ({"endpoint_url": "ftp://127.0.0.1"}, "endpoint_url must be an http:// or https:// URL"),
])
def test_bad_input_is_one_clear_error(options, cause, inventory_file, fleet, tmp_path):
    cache_dir = tmp_path / "cache"
    path = inventory_file(cache=True, cache_plugin="ansible.builtin.jsonfile",
                          cache_connection=str(cache_dir), **options)
    with pytest.raises(AnsibleError, match=cause):
        parse(path)
    assert not cache_dir.exists() or not list(cache_dir.glob("*"))


def test_unreachable_endpoint(inventory_file):
    from aws_lab import free_port
    path = inventory_file(endpoint_url=f"http://127.0.0.1:{free_port()}", retry_max_attempts=1)
    with pytest.raises(AnsibleError, match="cannot reach the AWS endpoint"):
        parse(path)


def test_wrong_credentials(inventory_file, proxy, fleet):
    proxy.known_keys = {"AKIDGOOD"}  # the proxy plays AWS's signature check: a stand-in
    with pytest.raises(AnsibleError, match=r"no scope could be listed.*AuthFailure"):
        parse(inventory_file())
    with pytest.raises(AnsibleError, match="InvalidClientTokenId"):
        parse(inventory_file(assume_roles=[ROLE_A]))


# ------------------------------------------------------------------ SSM and regions
def test_ssm_managed_hosts_get_connection_vars(fleet, inventory_file, proxy):
    managed = sorted(fleet.ids(regions=["eu-west-3"]))
    proxy.ssm_managed["eu-west-3"] = managed  # moto has no DescribeInstanceInformation
    inventory = parse(inventory_file(regions=["eu-west-3"], use_ssm_inventory=True,
                                     ssm_connection=True, ssm_bucket_name="fleet-ssm"))
    host = inventory.hosts["paris-1"].vars
    assert host["ssm_managed"] is True and host["ssm_ping_status"] == "Online"
    assert host["ansible_connection"] == "amazon.aws.aws_ssm"
    assert host["ansible_aws_ssm_instance_id"] == managed[0]
    assert host["ansible_aws_ssm_region"] == "eu-west-3"
    assert host["ansible_aws_ssm_bucket_name"] == "fleet-ssm"


def test_default_regions_are_the_enabled_ones(fleet, inventory_file, proxy):
    inventory = parse(inventory_file(regions=None, max_workers=4))
    assert proxy.count("DescribeRegions") == 1
    assert set(by_instance(inventory)) >= fleet.ids(regions=["us-east-1", "eu-west-1",
                                                             "eu-west-3"], accounts=[ACCOUNT_A])


def test_pagination_over_a_thousand_instances(big_region, inventory_file, proxy):
    inventory = parse(inventory_file(regions=[BIG_REGION]))
    assert set(by_instance(inventory)) == big_region and len(big_region) == 1010
    assert proxy.count("DescribeInstances", BIG_REGION) >= 2  # really paginated
    assert len(inventory.hosts) == 1010


def test_verify_file_wants_the_fleet_ec2_suffix(tmp_path):
    plugin = load_plugin()
    for name, wanted in (("a.fleet_ec2.yml", True), ("a.fleet_ec2.yaml", True),
                         ("a.aws_ec2.yml", False), ("ec2.yml", False)):
        (tmp_path / name).write_text("plugin: fleetforge.fleet.ec2\n")
        assert plugin.verify_file(str(tmp_path / name)) is wanted, name
