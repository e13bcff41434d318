"""Fixtures for the EC2 inventory tests: moto_server, the fault proxy, a seeded fleet."""
from __future__ import annotations

import os
import sys
import warnings

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import aws_lab

ACCOUNT_A = "123456789012"  # moto's default account
ACCOUNT_B = "222222222222"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/fleet-inventory"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/fleet-inventory"
ROLE_DENIED = "arn:aws:iam::333333333333:role/fleet-inventory"
BIG_REGION = "ca-central-1"


class Fleet:
    """What was seeded, so tests compare the inventory with the truth."""

    def __init__(self):
        self.instances = {}  # instance id -> {"account", "region", "tags", "state"}

    def add(self, ids, account, region, tags=None, state="running"):
        for iid in ids:
            self.instances[iid] = {"account": account, "region": region,
                                   "tags": dict(tags or {}), "state": state}

    def ids(self, regions=None, accounts=None, state=None):
        return {iid for iid, item in self.instances.items()
                if (regions is None or item["region"] in regions)
                and (accounts is None or item["account"] in accounts)
                and (state is None or item["state"] == state)}


def _collection_modules():
    return {name: module for name, module in sys.modules.items()
            if name == "ansible_collections" or name.startswith("ansible_collections.")}


@pytest.fixture(scope="module")
def collection_loader():
    """Ansible's collection finder, as ansible-inventory has it, for this module's tests only.

    Other unit tests import the collection as a plain package from sys.path; the finder needs
    to import it itself (with its metadata), so plain modules are set aside while it is
    installed and put back afterwards.
    """
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    saved = _collection_modules()
    for name in saved:
        del sys.modules[name]
    _AnsibleCollectionFinder._remove()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        init_plugin_loader()
    yield
    _AnsibleCollectionFinder._remove()
    for name in _collection_modules():
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture(scope="session")
def moto():
    server = aws_lab.MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fault_proxy(moto):
    proxy = aws_lab.FaultInjectingProxy(moto.port)
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(fault_proxy):
    fault_proxy.reset()
    yield fault_proxy
    fault_proxy.reset()


@pytest.fixture(scope="session")
def fleet(moto):
    """Two accounts, three regions: tags, no tags, stopped, duplicate Names, hostile tags."""
    boto3 = pytest.importorskip("boto3")
    fleet = Fleet()
    for account, role in ((ACCOUNT_A, None), (ACCOUNT_B, ROLE_B)):
        for region in ("us-east-1", "eu-west-1"):
            ec2 = aws_lab.account_client(boto3, moto.url, "ec2", region, role)
            short = "a" if account == ACCOUNT_A else "b"
            for index, env in enumerate(("prod", "prod", "stage")):
                tags = {"Name": f"web-{short}-{index}", "Env": env, "Role": "web"}
                fleet.add(aws_lab.run(ec2, tags), account, region, tags)
            tags = {"Name": "db", "Env": "prod", "Role": "db"}  # the same Name 2 x 2 x 2 times
            fleet.add(aws_lab.run(ec2, tags, count=2, instance_type="m5.large"), account, region,
                      tags)
            fleet.add(aws_lab.run(ec2), account, region)  # no tags at all
            stopped = aws_lab.run(ec2, {"Name": f"batch-{short}", "Env": "stage"})
            ec2.stop_instances(InstanceIds=stopped)
            fleet.add(stopped, account, region, {"Name": f"batch-{short}", "Env": "stage"},
                      state="stopped")
            if region == "us-east-1" and account == ACCOUNT_A:
                hostile = {"Name": "odd-{{ 7 * 6 }}", "Note": "{{ lookup('env', 'HOME') }}"}
                fleet.add(aws_lab.run(ec2, hostile), account, region, hostile)
    ec2 = aws_lab.account_client(boto3, moto.url, "ec2", "eu-west-3")
    tags = {"Name": "paris-1", "Env": "prod"}
    fleet.add(aws_lab.run(ec2, tags), ACCOUNT_A, "eu-west-3", tags)
    return fleet


@pytest.fixture(scope="session")
def big_region(moto, fleet):
    """1,010 instances over 101 reservations in one region: moto pages by 100 reservations."""
    boto3 = pytest.importorskip("boto3")
    ec2 = aws_lab.account_client(boto3, moto.url, "ec2", BIG_REGION)
    for batch in range(101):
        tags = {"Name": f"node-{batch:03d}", "Env": ("prod", "stage")[batch % 2]}
        fleet.add(aws_lab.run(ec2, tags, count=10), ACCOUNT_A, BIG_REGION, tags)
    return fleet.ids(regions=[BIG_REGION])
