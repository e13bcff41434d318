"""Answers are read in one read (plugin_utils.aws.WholeBodySession), with botocore's errors."""
from __future__ import annotations

import socket
import threading

import aws_lab  # tests/unit/plugins/inventory, put on sys.path by conftest
import pytest
from ansible_collections.fleetforge.fleet.plugins.plugin_utils import aws

boto3 = pytest.importorskip("boto3")
urllib3 = pytest.importorskip("urllib3")
Config = pytest.importorskip("botocore.config").Config
botocore_exceptions = pytest.importorskip("botocore.exceptions")
ConnectionClosedError = botocore_exceptions.ConnectionClosedError
ReadTimeoutError = botocore_exceptions.ReadTimeoutError

REGIONS_ANSWER = (b'<?xml version="1.0" encoding="UTF-8"?>'
                  b'<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                  b'<requestId>r</requestId><regionInfo>'
                  + b"".join(b"<item><regionName>region-%04d</regionName>"
                             b"<regionEndpoint>ec2.region-%04d.example</regionEndpoint>"
                             b"<optInStatus>opt-in-not-required</optInStatus></item>" % (n, n)
                             for n in range(3000))
                  + b"</regionInfo></DescribeRegionsResponse>")  # about 400 KB: many 64 KiB pieces


def account(url, attempts=1, read_timeout=60):
    session = aws.new_session(aws_access_key_id="test", aws_secret_access_key="test")
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts},
                    read_timeout=read_timeout)
    return aws.AwsAccount(session, config, endpoint_url=url)


def stock_client(url, region="us-east-1"):
    """A client as boto3 makes it, reading answers in botocore's own way."""
    return boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test").client(
        "ec2", region_name=region, endpoint_url=url)


@pytest.fixture()
def regions_server():
    """A server answering DescribeRegions with REGIONS_ANSWER; counts requests and connections."""
    seen = {"requests": 0, "connections": set()}

    def handle(handler):
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        seen["requests"] += 1
        seen["connections"].add(handler.client_address)
        aws_lab.reply(handler, 200, REGIONS_ANSWER, {"Content-Type": "text/xml"})

    server, url = aws_lab.serve(handle)
    yield url, seen
    server.shutdown()
    server.server_close()


@pytest.fixture()
def reads(monkeypatch):
    """Every urllib3 HTTPResponse.read call's amt, and whether stream() was used."""
    calls = {"read": [], "stream": 0}
    read, stream = urllib3.response.HTTPResponse.read, urllib3.response.HTTPResponse.stream

    def counting_read(self, amt=None, *args, **kwargs):
        calls["read"].append(amt)
        return read(self, amt, *args, **kwargs)

    def counting_stream(self, *args, **kwargs):
        calls["stream"] += 1
        return stream(self, *args, **kwargs)

    monkeypatch.setattr(urllib3.response.HTTPResponse, "read", counting_read)
    monkeypatch.setattr(urllib3.response.HTTPResponse, "stream", counting_stream)
    return calls


def test_clients_read_each_answer_in_one_read(regions_server, reads):
    url, seen = regions_server
    client = account(url).client("ec2", "us-east-1")
    assert isinstance(client._endpoint.http_session, aws.WholeBodySession)
    answers = [client.describe_regions(), client.describe_regions(), client.describe_regions()]
    assert reads == {"read": [None, None, None], "stream": 0}
    regions = [item["RegionName"] for item in answers[0]["Regions"]]
    assert regions[:2] == ["region-0000", "region-0001"] and len(regions) == 3000
    # the connection goes back to the pool after the read: all three over one connection
    assert seen["requests"] == 3 and len(seen["connections"]) == 1


def test_the_result_is_botocores_own(regions_server, reads):
    url = regions_server[0]
    ours = account(url).client("ec2", "us-east-1").describe_regions()
    ours_reads = list(reads["read"])
    theirs = stock_client(url).describe_regions()
    assert reads["stream"] == 1  # the stock client reads in pieces
    assert ours_reads == [None]
    for answer in (ours, theirs):
        answer.pop("ResponseMetadata")
    assert ours == theirs


def test_moto_answers_are_the_same(moto, reads):
    ours = account(moto.url).client("ec2", "eu-west-3").describe_regions(AllRegions=True)
    assert reads["read"] == [None] and reads["stream"] == 0
    theirs = stock_client(moto.url, "eu-west-3").describe_regions(AllRegions=True)
    for answer in (ours, theirs):
        answer.pop("ResponseMetadata")
    assert ours == theirs and len(ours["Regions"]) > 10


def truncating_server(declared, sent, stall=0.0):
    """A raw HTTP server: each answer declares `declared` bytes, sends `sent` of them, then
    (after `stall` seconds) closes the connection. Returns (url, request counter, stop)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    counter = {"requests": 0}
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                return
            with conn:
                conn.recv(65536)
                counter["requests"] += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                             b"Content-Length: %d\r\n\r\n" % declared + REGIONS_ANSWER[:sent])
                stop.wait(stall)

    threading.Thread(target=serve, daemon=True).start()

    def close():
        stop.set()
        listener.close()

    return f"http://127.0.0.1:{listener.getsockname()[1]}", counter, close


def test_a_short_body_is_a_closed_connection_and_is_retried():
    url, counter, close = truncating_server(len(REGIONS_ANSWER), 1000)
    try:
        client = account(url, attempts=3).client("ec2", "us-east-1")
        with pytest.raises(ConnectionClosedError):
            client.describe_regions()
    finally:
        close()
    assert counter["requests"] == 3  # botocore's retries saw the same error as from its read


def test_a_stalled_body_is_a_read_timeout():
    url, counter, close = truncating_server(len(REGIONS_ANSWER), 1000, stall=5)
    try:
        client = account(url, attempts=1, read_timeout=0.5).client("ec2", "us-east-1")
        with pytest.raises(ReadTimeoutError):
            client.describe_regions()
    finally:
        close()
    assert counter["requests"] == 1


class RecordingSession:
    """A stand-in for botocore's URLLib3Session (test double): records the requests it sends."""

    def __init__(self):
        self.sent = []
        self.closed = False

    def send(self, request):
        self.sent.append(request.stream_output)
        return "streamed answer"

    def close(self):
        self.closed = True


class Request:
    url = "http://127.0.0.1:1/"

    def __init__(self, stream_output):
        self.stream_output = stream_output


def test_streamed_answers_pass_through_and_other_calls_reach_the_session():
    inner = RecordingSession()
    session = aws.WholeBodySession(inner)
    request = Request(stream_output=True)
    assert session.send(request) == "streamed answer"
    assert inner.sent == [True] and request.stream_output is True
    session.close()
    assert inner.closed


def test_the_request_is_restored_when_sending_fails():
    class Failing(RecordingSession):
        def send(self, request):
            super().send(request)
            raise ConnectionError("refused")

    request = Request(stream_output=False)
    with pytest.raises(ConnectionError):
        aws.WholeBodySession(Failing()).send(request)
    assert request.stream_output is False


def test_an_endpoint_with_another_session_is_left_alone():
    class Endpoint:
        http_session = RecordingSession()

    class Client:
        _endpoint = Endpoint()

    client = Client()
    aws.read_bodies_whole(client)
    assert isinstance(client._endpoint.http_session, RecordingSession)
    aws.read_bodies_whole(object())  # no endpoint at all: nothing to do, no error
