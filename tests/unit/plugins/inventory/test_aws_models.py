"""Clients are built from botocore's models with only the operations the inventory calls."""
from __future__ import annotations

import pytest
from ansible_collections.fleetforge.fleet.plugins.plugin_utils import aws

botocore_session = pytest.importorskip("botocore.session")
botocore_model = pytest.importorskip("botocore.model")


@pytest.fixture(scope="module")
def ec2_model():
    return botocore_session.Session().get_component("data_loader").load_service_model(
        "ec2", "service-2")


def _walk(shape, seen):
    """Every shape below ``shape``, resolved through botocore's own model classes."""
    if shape is None or shape.name in seen:
        return
    seen.add(shape.name)
    for nested in getattr(shape, "members", {}).values():
        _walk(nested, seen)
    for attribute in ("member", "key", "value"):
        _walk(getattr(shape, attribute, None), seen)


def test_only_the_listed_operations_and_every_shape_they_use(ec2_model):
    wanted = aws.OPERATIONS["ec2"]
    trimmed = aws.only_operations(ec2_model, wanted)
    assert set(trimmed["operations"]) == set(wanted)
    assert len(ec2_model["operations"]) > 500 and len(trimmed["shapes"]) < len(ec2_model["shapes"])
    full, small = botocore_model.ServiceModel(ec2_model), botocore_model.ServiceModel(trimmed)
    reached_full, reached_small = set(), set()
    for name in wanted:
        for model, reached in ((full, reached_full), (small, reached_small)):
            operation = model.operation_model(name)
            _walk(operation.input_shape, reached)
            _walk(operation.output_shape, reached)
    assert reached_small == reached_full
    assert {"Instance", "Reservation", "Tag", "Region", "Filter"} <= reached_small
    assert set(trimmed["shapes"]) == reached_full
    assert trimmed["metadata"] == ec2_model["metadata"]
    assert ec2_model["operations"]["RunInstances"]  # the loader's cached model is untouched


def test_a_model_without_an_operation_is_kept_whole(ec2_model):
    assert aws.only_operations(ec2_model, frozenset({"DescribeInstances", "NoSuchCall"})) \
        is ec2_model


def test_clients_have_only_what_the_inventory_calls():
    account = aws.AwsAccount.from_options(access_key="a", secret_key="b",
                                          endpoint_url="http://127.0.0.1:9")
    ec2 = account.client("ec2", "eu-west-1")
    assert hasattr(ec2, "describe_instances") and hasattr(ec2, "describe_regions")
    assert not hasattr(ec2, "run_instances") and not hasattr(ec2, "terminate_instances")
    assert ec2.can_paginate("describe_instances")  # paginators come from botocore unchanged
    assert ec2.get_paginator("describe_instances")
    assert set(ec2.meta.service_model.operation_names) == {"DescribeInstances", "DescribeRegions"}
    ssm = account.client("ssm", "eu-west-1")
    assert ssm.meta.service_model.operation_names == ["DescribeInstanceInformation"]
    assert hasattr(account.client("sts", "eu-west-1"), "assume_role")  # not listed: whole
    loader = account.session._session.get_component("data_loader")
    assert isinstance(loader, aws.OperationsLoader)
    # one trimmed model per version, shared by every region's client
    assert account.client("ec2", "us-east-1").meta.service_model._service_description \
        is ec2.meta.service_model._service_description
