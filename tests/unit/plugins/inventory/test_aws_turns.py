"""Worker threads prepare their first request in turns (plugin_utils.aws.first_request_in_turn)."""
from __future__ import annotations

import threading

import pytest
from ansible_collections.fleetforge.fleet.plugins.plugin_utils import aws

pytest.importorskip("boto3")


def test_the_turn_ends_when_the_request_is_sent(moto):
    account = aws.AwsAccount.from_options(access_key="seed", secret_key="seed",
                                          endpoint_url=moto.url)
    seen = []
    with aws.first_request_in_turn():
        client = account.client("ec2", "us-east-1")
        assert aws._turn_lock.locked()
        client.meta.events.register("before-parse.ec2.DescribeRegions",
                                    lambda **kwargs: seen.append(aws._turn_lock.locked()))
        client.describe_regions()
        client.describe_regions()  # a later request of the same thread waits for no turn
    assert seen == [False, False]
    assert not aws._turn_lock.locked()


def test_an_error_before_the_request_ends_the_turn():
    with pytest.raises(RuntimeError), aws.first_request_in_turn():
        raise RuntimeError("no client")
    assert not aws._turn_lock.locked()
    with aws.first_request_in_turn():  # would block for ever if the turn were still taken
        pass


def test_threads_prepare_one_after_another():
    events = []
    first_in = threading.Event()

    def first():
        with aws.first_request_in_turn():
            first_in.set()
            threading.Event().wait(0.2)  # the second thread is started meanwhile
            events.append("first prepared")
            aws._end_turn()  # what botocore's before-send does
            events.append("first sent")

    def second():
        first_in.wait()
        with aws.first_request_in_turn():
            events.append("second prepares")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert events.index("first prepared") < events.index("second prepares")
    assert not aws._turn_lock.locked()
