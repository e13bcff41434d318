"""fleetforge.fleet.ec2 against amazon.aws.aws_ec2 on the same moto data (`ansible-inventory --list`).

Runs on the controller venv only (amazon.aws comes from the `ansible` package). Both plugins get
equivalent options; host names, group membership and the host variables both have must agree.

Intentional differences (documented in README.md, asserted below where they show):
- all hosts are in `fleet_ec2` (aws_ec2: `aws_ec2`);
- `launch_time` is an ISO 8601 string (aws_ec2: a datetime object, written as the same text,
  but not marked unsafe by ansible-inventory 2.19 since it is not a string);
- instances wanting the same hostname: aws_ec2 keeps one host, we keep every instance
  (`<name>_<instance id>` for the later ones);
- we expose a subset of the DescribeInstances fields (no block devices, network interfaces,
  ...), plus `region`, `availability_zone`, `account_id`, `security_group_ids` and `platform`
  (`linux` when AWS reports none); nested mappings we expose carry a subset of the keys.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "inventory"))

import aws_lab  # moto_server and seeding helpers of the unit tests

boto3 = pytest.importorskip("boto3")
BIN = Path(sys.executable).parent
SITE = Path(boto3.__file__).resolve().parents[1]
REGIONS = ["us-east-1", "eu-west-1"]
SHARED = {
    "regions": REGIONS,
    "hostnames": ["tag:Name", "private-dns-name"],
    "compose": {"ansible_host": "private_ip_address", "role": "tags.Role | default('none')"},
    "groups": {"production": "tags.Env | default('') == 'prod'",
               "large": "instance_type.startswith('m5')"},
    "keyed_groups": [
        {"key": "placement.region", "prefix": "region"},
        {"key": "instance_type", "prefix": "type"},
        {"key": "state.name", "prefix": "state"},
        {"key": "tags.Env | default('none')", "prefix": "env"},
        {"key": "tags", "prefix": "tag"},
        {"key": "security_groups | map(attribute='group_name') | list", "prefix": "sg"},
    ],
}


@pytest.fixture(scope="module")
def moto_data():
    """Unique names (plus untagged instances named by DNS), stopped ones, a duplicate pair."""
    server = aws_lab.MotoServer()
    try:
        seeded = []
        for region in REGIONS:
            ec2 = aws_lab.account_client(boto3, server.url, "ec2", region)
            group = ec2.create_security_group(GroupName="web-" + region, Description="web")
            for index in range(6):
                tags = {"Name": f"web-{region}-{index}", "Env": ("prod", "stage")[index % 2],
                        "Role": "web"}
                ids = ec2.run_instances(ImageId=aws_lab.AMI, MinCount=1, MaxCount=1,
                                        InstanceType=("t3.micro", "m5.large")[index % 2],
                                        SecurityGroupIds=[group["GroupId"]],
                                        TagSpecifications=aws_lab.tag_spec(tags))
                seeded += [i["InstanceId"] for i in ids["Instances"]]
            seeded += aws_lab.run(ec2, count=2)  # no tags: named by private DNS name
            stopped = aws_lab.run(ec2, {"Name": f"batch-{region}", "Env": "prod"})
            ec2.stop_instances(InstanceIds=stopped)
            seeded += stopped
        yield server, seeded
    finally:
        server.stop()


def inventory(tmp_path, name, config):
    suffix = "fleet_ec2.yml" if name == "fleet" else "aws_ec2.yml"
    path = tmp_path / f"{name}.{suffix}"
    path.write_text(json.dumps(config))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=f"{REPO / '.build' / 'collections'}:{SITE}",
               ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
                         capture_output=True, text=True, env=env, check=False, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def configs(url, **extra):
    ours = dict(SHARED, plugin="fleetforge.fleet.ec2", endpoint_url=url, aws_access_key="a",
                aws_secret_key="b", ansible_host="none", **extra)
    theirs = dict(SHARED, plugin="amazon.aws.aws_ec2", endpoint_url=url, access_key="a",
                  secret_key="b", **extra)
    return ours, theirs


def membership(data, host_group_to_skip):
    groups = {}
    for group, body in data.items():
        if group in ("_meta", "all", "ungrouped", host_group_to_skip):
            continue
        groups[group] = set(body.get("hosts", []))
    return {g: m for g, m in groups.items() if m}


def unwrap(value):
    """ansible-inventory 2.19 writes untrusted strings as {"__ansible_unsafe": text}."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    return value


def common(ours, theirs, path=""):
    """Differences between two values on the keys both have (recursively)."""
    ours, theirs = unwrap(ours), unwrap(theirs)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        diffs = []
        for key in set(ours) & set(theirs):
            diffs += common(ours[key], theirs[key], f"{path}.{key}")
        return diffs
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        diffs = []
        for index, (a, b) in enumerate(zip(ours, theirs)):
            diffs += common(a, b, f"{path}[{index}]")
        return diffs
    return [] if ours == theirs else [f"{path}: {ours!r} != {theirs!r}"]


def test_same_hosts_groups_and_hostvars(moto_data, tmp_path):
    server, seeded = moto_data
    ours_config, theirs_config = configs(server.url)
    ours = inventory(tmp_path, "fleet", ours_config)
    theirs = inventory(tmp_path, "aws", theirs_config)
    our_vars, their_vars = ours["_meta"]["hostvars"], theirs["_meta"]["hostvars"]
    assert set(our_vars) == set(their_vars)
    assert len(our_vars) == len(seeded)
    assert membership(ours, "fleet_ec2") == membership(theirs, "aws_ec2")
    assert set(ours["fleet_ec2"]["hosts"]) == set(theirs["aws_ec2"]["hosts"])
    shared_keys = set()
    for host, hostvars in our_vars.items():
        assert common(hostvars, their_vars[host]) == [], host
        shared_keys |= set(hostvars) & set(their_vars[host])
    for key in ("instance_id", "instance_type", "state", "placement", "tags", "private_ip_address",
                "private_dns_name", "vpc_id", "subnet_id", "security_groups", "launch_time",
                "image_id", "owner_id", "ansible_host", "role"):
        assert key in shared_keys, key  # the comparison really covered these


def test_duplicate_names_aws_ec2_drops_hosts_we_keep_them(moto_data, tmp_path):
    server, _seeded = moto_data
    ec2 = aws_lab.account_client(boto3, server.url, "ec2", "eu-west-3")
    twins = aws_lab.run(ec2, {"Name": "twin", "Env": "prod"}, count=3)
    ours_config, theirs_config = configs(server.url, regions=["eu-west-3"])
    ours = inventory(tmp_path, "fleet", ours_config)["_meta"]["hostvars"]
    theirs = inventory(tmp_path, "aws", theirs_config)["_meta"]["hostvars"]
    assert sorted(unwrap(h["instance_id"]) for h in ours.values()) == sorted(twins)
    assert list(theirs) == ["twin"]  # aws_ec2: one host for three instances
