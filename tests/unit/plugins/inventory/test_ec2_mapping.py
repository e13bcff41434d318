"""Pure functions of fleetforge.fleet.ec2: hostname preferences and connection variables."""
from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleError
from ansible_collections.fleetforge.fleet.plugins.inventory.ec2 import (
    connection_vars,
    instance_hostvars,
    normalise_hostnames,
    preferred_hostname,
)

INSTANCE = {"InstanceId": "i-0abc", "PrivateIpAddress": "10.0.0.5", "PublicIpAddress": "54.1.2.3",
            "PrivateDnsName": "ip-10-0-0-5.internal", "PublicDnsName": "ec2-54-1-2-3.aws",
            "Placement": {"AvailabilityZone": "eu-west-1a"}, "State": {"Code": 16, "Name": "running"},
            "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "Env", "Value": "prod"},
                     {"Key": "Blank", "Value": "  "}]}
PRIVATE_ONLY = {key: value for key, value in INSTANCE.items()
                if key not in ("PublicIpAddress", "PublicDnsName")}


@pytest.mark.parametrize("hostnames, wanted", [
    (["tag:Name"], "web-1"),
    (["tag:Missing", "private-ip-address"], "10.0.0.5"),
    (["tag:Blank", "instance-id"], "i-0abc"),  # blank values do not count
    (["public-ip-address"], "54.1.2.3"),
    (["ip-address"], "54.1.2.3"),
    (["dns-name"], "ec2-54-1-2-3.aws"),
    (["public-dns-name"], "ec2-54-1-2-3.aws"),
    (["private-dns-name"], "ip-10-0-0-5.internal"),
    ([{"name": "tag:Name", "prefix": "tag:Env", "separator": "-"}], "prod-web-1"),
    ([{"name": "tag:Name", "prefix": "tag:Missing"}, "instance-id"], "i-0abc"),
    ([{"name": "instance-id", "prefix": "tag:Env"}], "prod_i-0abc"),
    (["tag:Missing"], None),
])
def test_hostname_preferences(hostnames, wanted):
    tags = instance_hostvars(INSTANCE, "111111111111", "eu-west-1")["tags"]
    assert preferred_hostname(INSTANCE, tags, normalise_hostnames(hostnames)) == wanted


@pytest.mark.parametrize("hostnames", [[], ["tag:"], [{"prefix": "tag:Env"}],
                                       [{"name": "tag:Name", "bogus": 1}], ["dns"]])
def test_bad_hostnames_are_refused(hostnames):
    with pytest.raises(AnsibleError, match="hostnames"):
        normalise_hostnames(hostnames)


@pytest.mark.parametrize("instance, option, wanted", [
    (INSTANCE, "private-ip-address", "10.0.0.5"),
    (INSTANCE, "public-ip-address", "54.1.2.3"),
    (INSTANCE, "private-dns-name", "ip-10-0-0-5.internal"),
    (INSTANCE, "public-dns-name", "ec2-54-1-2-3.aws"),
    (INSTANCE, "auto", "54.1.2.3"),
    (PRIVATE_ONLY, "auto", "10.0.0.5"),
    (PRIVATE_ONLY, "public-ip-address", None),
    (INSTANCE, "none", None),
])
def test_ansible_host_choice(instance, option, wanted):
    hostvars = instance_hostvars(instance, "111111111111", "eu-west-1")
    assert connection_vars(hostvars, option).get("ansible_host") == wanted


def test_ssm_connection_vars_only_for_managed_hosts():
    hostvars = instance_hostvars(INSTANCE, "111111111111", "eu-west-1")
    assert connection_vars(hostvars, "none", ssm=None, ssm_connection=True) == {}
    assert connection_vars(hostvars, "none", ssm="Online", ssm_connection=True, bucket="b") == {
        "ansible_connection": "amazon.aws.aws_ssm", "ansible_aws_ssm_instance_id": "i-0abc",
        "ansible_aws_ssm_region": "eu-west-1", "ansible_aws_ssm_bucket_name": "b"}


def test_hostvars_leave_out_absent_fields_and_keep_account_and_region():
    hostvars = instance_hostvars(PRIVATE_ONLY, "111111111111", "eu-west-1")
    assert "public_ip_address" not in hostvars and "public_dns_name" not in hostvars
    assert hostvars["account_id"] == hostvars["owner_id"] == "111111111111"
    assert hostvars["region"] == hostvars["placement"]["region"] == "eu-west-1"
    assert hostvars["availability_zone"] == "eu-west-1a"
    assert hostvars["platform"] == "linux"
    assert hostvars["tags"] == {"Name": "web-1", "Env": "prod", "Blank": "  "}


def test_hostvars_of_security_groups_profile_and_launch_time():
    launched = datetime.datetime(2026, 11, 28, 13, 16, 21, tzinfo=datetime.timezone.utc)
    instance = dict(INSTANCE, LaunchTime=launched, Platform="windows",
                    SecurityGroups=[{"GroupId": "sg-1", "GroupName": "web"},
                                    {"GroupId": "sg-2", "GroupName": "ssh"}],
                    IamInstanceProfile={"Arn": "arn:aws:iam::1:instance-profile/p", "Id": "AIP1"})
    hostvars = instance_hostvars(instance, "111111111111", "eu-west-1")
    assert hostvars["security_groups"] == [{"group_id": "sg-1", "group_name": "web"},
                                           {"group_id": "sg-2", "group_name": "ssh"}]
    assert hostvars["security_group_ids"] == ["sg-1", "sg-2"]
    assert hostvars["iam_instance_profile"] == {"arn": "arn:aws:iam::1:instance-profile/p",
                                                "id": "AIP1"}
    assert hostvars["launch_time"] == "2026-11-28T13:16:21+00:00"  # botocore's datetime
    assert hostvars["platform"] == "windows"
    assert hostvars["state"] == {"code": 16, "name": "running"}
    text = dict(instance, LaunchTime="2026-11-28T13:16:21+00:00")  # the fast reader's text
    assert instance_hostvars(text, "1", "eu-west-1")["launch_time"] == hostvars["launch_time"]
