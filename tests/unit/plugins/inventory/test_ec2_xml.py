"""The fast DescribeInstances reader gives what botocore's own parser gives, on moto's answers."""
from __future__ import annotations

import datetime

import aws_lab  # tests/unit/plugins/inventory, put on sys.path by conftest
import pytest
from ansible_collections.fleetforge.fleet.plugins.plugin_utils import aws
from ansible_collections.fleetforge.fleet.plugins.plugin_utils.ec2_xml import (
    NotDescribeInstances,
    drop_unread,
    iso_timestamp,
    parse_describe_instances,
)
from conftest import ACCOUNT_A, BIG_REGION

boto3 = pytest.importorskip("boto3")

XML_REGION = "ap-northeast-2"
KEYS = ("InstanceId", "InstanceType", "ImageId", "Architecture", "Platform", "VpcId", "SubnetId",
        "PrivateIpAddress", "PublicIpAddress", "PrivateDnsName", "PublicDnsName", "KeyName",
        "Tags", "State", "Placement", "SecurityGroups", "IamInstanceProfile", "LaunchTime")


@pytest.fixture(scope="module")
def varied_region(moto):
    """Instances with a key pair, two security groups, an IAM profile, no tags, stopped."""
    ec2 = aws_lab.account_client(boto3, moto.url, "ec2", XML_REGION)
    iam = aws_lab.account_client(boto3, moto.url, "iam", XML_REGION)
    iam.create_instance_profile(InstanceProfileName="fleet-xml")
    ec2.create_key_pair(KeyName="fleet-xml")
    groups = [ec2.create_security_group(GroupName=f"xml-{n}", Description="x")["GroupId"]
              for n in range(2)]
    ids = ec2.run_instances(ImageId=aws_lab.AMI, MinCount=3, MaxCount=3, KeyName="fleet-xml",
                            SecurityGroupIds=groups, IamInstanceProfile={"Name": "fleet-xml"},
                            TagSpecifications=aws_lab.tag_spec({"Name": "a&b <c>", "Env": ""}))
    ids = [i["InstanceId"] for i in ids["Instances"]]
    ec2.stop_instances(InstanceIds=ids[:1])
    aws_lab.run(ec2)  # no tags, default security group, no profile
    return XML_REGION


def botocore_pages(url, region):
    client = aws_lab.account_client(boto3, url, "ec2", region)
    return list(client.get_paginator("describe_instances").paginate())


def fast_pages(url, region):
    account = aws.AwsAccount.from_options(access_key="seed", secret_key="seed", endpoint_url=url)
    client = account.client("ec2", region)
    return list(client.get_paginator("describe_instances").paginate())


def subset(instance):
    """The fields the inventory reads, as botocore gives them (LaunchTime as text)."""
    wanted = {key: instance[key] for key in KEYS if key in instance}
    placement = wanted.get("Placement", {})
    wanted["Placement"] = {k: placement[k] for k in ("AvailabilityZone", "Tenancy") if k in placement}
    if isinstance(wanted.get("LaunchTime"), datetime.datetime):
        wanted["LaunchTime"] = wanted["LaunchTime"].isoformat()
    return wanted


@pytest.mark.parametrize("region", [XML_REGION, BIG_REGION])
def test_fast_reader_matches_botocore(moto, varied_region, big_region, region):
    slow, fast = botocore_pages(moto.url, region), fast_pages(moto.url, region)
    assert len(slow) == len(fast)
    if region == BIG_REGION:
        assert len(fast) >= 2 and all("NextToken" in page for page in fast[:-1])
    slow_instances = [(r["OwnerId"], subset(i)) for p in slow for r in p["Reservations"]
                      for i in r["Instances"]]
    fast_instances = [(r["OwnerId"], i) for p in fast for r in p["Reservations"]
                      for i in r["Instances"]]
    assert fast_instances == slow_instances
    assert len(fast_instances) == (4 if region == XML_REGION else 1010)
    # the fast reader really ran: botocore would have filled in the fields we skip
    raw_keys = {key for p in fast for r in p["Reservations"] for i in r["Instances"] for key in i}
    assert raw_keys <= set(KEYS) and "BlockDeviceMappings" not in raw_keys
    if region == XML_REGION:
        odd = [i for _owner, i in fast_instances if i.get("KeyName") == "fleet-xml"]
        assert len(odd) == 3 and odd[0]["Tags"] and len(odd[0]["SecurityGroups"]) == 2
        assert {t["Key"]: t["Value"] for t in odd[0]["Tags"]} == {"Name": "a&b <c>", "Env": ""}
        assert "fleet-xml" in odd[0]["IamInstanceProfile"]["Arn"]
        assert {i["State"]["Name"] for i in odd} == {"running", "stopped"}
        assert all(owner == ACCOUNT_A for owner, _instance in fast_instances)


def test_errors_are_still_botocore_errors(moto):
    from botocore.exceptions import ClientError
    account = aws.AwsAccount.from_options(access_key="seed", secret_key="seed",
                                          endpoint_url=moto.url)
    with pytest.raises(ClientError, match="InvalidInstanceID"):
        account.client("ec2", XML_REGION).describe_instances(InstanceIds=["i-00000000000000000"])


@pytest.mark.parametrize("body", [b"not xml", b"<Other/>", b"<?xml version='1.0'?><Response>"
                                  b"<Errors><Error><Code>X</Code></Error></Errors></Response>"])
def test_other_documents_are_left_to_botocore(body):
    with pytest.raises(NotDescribeInstances):
        parse_describe_instances(body)
    response = {"status_code": 200, "body": body, "headers": {}}
    custom = {}
    aws.fast_describe_instances(response_dict=response, customized_response_dict=custom)
    assert response["body"] == body and custom == {}


@pytest.mark.parametrize("text, wanted", [
    ("2026-11-28T13:16:21.000Z", "2026-11-28T13:16:21+00:00"),
    ("2026-11-28T13:16:21.250Z", "2026-11-28T13:16:21.250000+00:00"),
    ("2026-11-28T15:16:21+02:00", "2026-11-28T13:16:21+00:00"),
    ("yesterday", "yesterday"),
    ("", None),
])
def test_iso_timestamp(text, wanted):
    assert iso_timestamp(text) == wanted


def test_namespaced_and_plain_answers_read_the_same():
    """AWS declares a default namespace on the root element; an answer without one reads the same."""
    item = ("<item><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><instancesSet>"
            "<item><instanceId>i-1</instanceId><tagSet><item><key>Name</key><value>a&amp;b</value>"
            "</item></tagSet><instanceState><code>16</code><name>running</name></instanceState>"
            "</item></instancesSet></item>")
    wanted = {"Reservations": [{"OwnerId": "123456789012", "Instances": [
        {"InstanceId": "i-1", "Tags": [{"Key": "Name", "Value": "a&b"}],
         "State": {"Code": 16, "Name": "running"}}]}]}
    for root in ('<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">',
                 "<DescribeInstancesResponse>"):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n' + root + "<reservationSet>" + item
                + "</reservationSet></DescribeInstancesResponse>").encode()
        assert parse_describe_instances(body) == wanted, root


UNREAD = (b"<item><instanceId>i-1</instanceId><blockDeviceMapping><item><deviceName>/dev/xvda"
          b"</deviceName></item></blockDeviceMapping><metadataOptions><state>applied</state>"
          b"</metadataOptions><networkInterfaceSet><item><privateIpAddress>10.9.9.9"
          b"</privateIpAddress></item></networkInterfaceSet><privateIpAddress>10.0.0.1"
          b"</privateIpAddress><tagSet><item><key>Name</key><value>%s</value></item></tagSet>"
          b"</item>")


@pytest.mark.parametrize("value", [b"web", b"hello!", b"a&amp;b"])
def test_unread_parts_are_cut_before_parsing(value):
    """The parts never read are cut out, also when a "!" appears elsewhere in the page."""
    body = UNREAD % value
    assert drop_unread(body) == (b"<item><instanceId>i-1</instanceId><privateIpAddress>10.0.0.1"
                                 b"</privateIpAddress><tagSet><item><key>Name</key><value>"
                                 + value + b"</value></item></tagSet></item>")


@pytest.mark.parametrize("extra", [b"<!-- <blockDeviceMapping> -->", b"<![CDATA[<x>]]>",
                                   b"<blockDeviceMapping><item>"])
def test_pages_that_cannot_be_cut_safely_are_left_whole(extra):
    """Comments and CDATA could hide a "<"; an unclosed part is not guessed at."""
    body = (UNREAD % b"web").replace(b"<privateIpAddress>10.0.0.1", extra
                                     + b"<privateIpAddress>10.0.0.1")
    assert drop_unread(body) == body


def test_odd_tag_and_state_forms_read_as_botocore_would():
    """Forms AWS never sends, pinned so that a faster copy cannot change them: a tag without a
    key is dropped, a missing value reads "", the last of a repeated field wins, fields in
    another order read the same, a state code that is not a number and empty texts are left out.
    (botocore itself gives Key "", no Value, a list of elements for the repeated value and
    raises on the code: the inventory drops empty values either way.)"""
    body = (b"<DescribeInstancesResponse><reservationSet><item><ownerId>1</ownerId><instancesSet>"
            b"<item><instanceId>i-1</instanceId><tagSet>"
            b"<item><key/><value>no key</value></item>"
            b"<item><key>Solo</key></item>"
            b"<item><key>Twice</key><value>first</value><value>second</value></item>"
            b"<item><value>before</value><key>Order</key></item>"
            b"</tagSet><instanceState><code>x</code><name>running</name></instanceState>"
            b"<placement><availabilityZone>a</availabilityZone><tenancy/></placement>"
            b"<groupSet><item><groupName>only-name</groupName></item></groupSet>"
            b"</item></instancesSet></item></reservationSet></DescribeInstancesResponse>")
    instance = parse_describe_instances(body)["Reservations"][0]["Instances"][0]
    assert instance["Tags"] == [{"Key": "Solo", "Value": ""}, {"Key": "Twice", "Value": "second"},
                                {"Key": "Order", "Value": "before"}]
    assert instance["State"] == {"Name": "running"}
    assert instance["Placement"] == {"AvailabilityZone": "a"}
    assert instance["SecurityGroups"] == [{"GroupName": "only-name"}]
