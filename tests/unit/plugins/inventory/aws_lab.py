"""A local AWS API for inventory tests: moto_server plus a fault-injecting proxy in front of it.

moto (PyPI moto[server]) is a real implementation of the EC2/STS APIs: boto3 talks HTTP to it
exactly as to AWS. moto grants every AssumeRole, never throttles and accepts any credentials,
so ``FaultInjectingProxy`` (a test stand-in, named as such) sits between the plugin and moto
and injects the failures real AWS produces: AccessDenied on AssumeRole for chosen roles,
RequestLimitExceeded a few times for a chosen region, AuthFailure for unknown access keys,
OptInRequired for a region that is "not enabled". It also counts every request, which is how
the tests prove that a cache hit makes no API call.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AMI = "ami-12c6146b"
CREDENTIAL_RE = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """moto_server in a subprocess on 127.0.0.1:<free port>."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_EC2_LOAD_DEFAULT_AMIS="false")  # seeding is 3x faster
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"moto_server exited with {self.process.returncode}") from None
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not start on port {self.port}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _ec2_error(code, message):
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>").encode()


def _sts_error(code, message):
    return ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
            f"<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>fault-proxy</RequestId></ErrorResponse>").encode()


def serve(handle):
    """A threaded HTTP server on 127.0.0.1 calling handle(handler) for every request."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            handle(self)

        do_GET = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def reply(handler, status, payload, headers):
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


class FaultInjectingProxy:
    """Test stand-in: forwards to moto, injecting AWS failures and counting requests."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.requests = []  # (access key, region, service, action)
        self.denied_roles = set()
        self.opt_in_regions = set()
        self.throttle = {}  # region -> how many DescribeInstances calls still get throttled
        self.known_keys = None  # None = accept any access key, like moto
        self.ssm_managed = {}  # region -> [instance ids] answered for DescribeInstanceInformation
        self.tokens = []  # X-Amz-Security-Token of every request that had one
        self.delay = 0.0  # seconds added to every DescribeInstances answer (a slow region)
        self.in_flight = 0
        self.most_in_flight = 0  # the most DescribeInstances requests open at the same time
        self.lock = threading.Lock()
        self.server, self.url = serve(self.handle)

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.denied_roles.clear()
            self.opt_in_regions.clear()
            self.throttle.clear()
            self.known_keys = None
            self.ssm_managed.clear()
            self.tokens.clear()
            self.delay = 0.0
            self.most_in_flight = 0

    def count(self, action=None, region=None):
        with self.lock:
            return sum(1 for _key, reg, _svc, act in self.requests
                       if (action is None or act == action) and (region is None or reg == region))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ one request
    def handle(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        match = CREDENTIAL_RE.search(handler.headers.get("Authorization", ""))
        key, region, service = match.groups() if match else ("", "", "")
        target = handler.headers.get("X-Amz-Target", "")
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if not target else {}
        action = target.rpartition(".")[2] if target else (form.get("Action") or [""])[0]
        with self.lock:
            self.requests.append((key, region, service, action))
            if handler.headers.get("X-Amz-Security-Token"):
                self.tokens.append(handler.headers["X-Amz-Security-Token"])
            fault = self._fault(key, region, service, action, form)
        if fault is not None:
            status, payload, content_type = fault
            reply(handler, status, payload, {"Content-Type": content_type})
            return
        if action == "DescribeInstances":
            with self.lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                time.sleep(self.delay)
                self._forward(handler, body)
            finally:
                with self.lock:
                    self.in_flight -= 1
            return
        self._forward(handler, body)

    def _forward(self, handler, body):
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        headers["Host"] = f"127.0.0.1:{self.upstream_port}"
        upstream.request(handler.command, handler.path, body=body, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
        upstream.close()
        reply_headers = {k: v for k, v in response.getheaders()
                         if k.lower() not in ("content-length", "transfer-encoding", "connection")}
        reply(handler, response.status, payload, reply_headers)

    def _fault(self, key, region, service, action, form):
        if self.known_keys is not None and key not in self.known_keys:
            if service == "sts":
                return 403, _sts_error("InvalidClientTokenId", "The security token included in "
                                       "the request is invalid."), "text/xml"
            return 401, _ec2_error("AuthFailure", "AWS was not able to validate the provided "
                                   "access credentials"), "text/xml"
        if action == "AssumeRole" and (form.get("RoleArn") or [""])[0] in self.denied_roles:
            return 403, _sts_error("AccessDenied", "User is not authorized to perform: "
                                   "sts:AssumeRole on resource: {}".format(form["RoleArn"][0])), "text/xml"
        if service == "ec2" and region in self.opt_in_regions:
            return 401, _ec2_error("OptInRequired", "You are not subscribed to this service. "
                                   "Please go to http://aws.amazon.com to subscribe."), "text/xml"
        if action == "DescribeInstances" and self.throttle.get(region, 0) > 0:
            self.throttle[region] -= 1
            return 503, _ec2_error("RequestLimitExceeded", "Request limit exceeded."), "text/xml"
        if action == "DescribeInstanceInformation":  # moto 5.2.5 answers 500 here: stand-in
            listing = [{"InstanceId": iid, "PingStatus": "Online", "PlatformType": "Linux"}
                       for iid in self.ssm_managed.get(region, [])]
            return 200, json.dumps({"InstanceInformationList": listing}).encode(), \
                "application/x-amz-json-1.1"
        return None


# ------------------------------------------------------------------ seeding
def tag_spec(tags):
    if not tags:
        return []
    return [{"ResourceType": "instance",
             "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def run(ec2, tags=None, count=1, instance_type="t3.micro"):
    answer = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count,
                               InstanceType=instance_type, TagSpecifications=tag_spec(tags))
    return [i["InstanceId"] for i in answer["Instances"]]


def account_client(boto3, url, service, region, role_arn=None):
    """A client straight to moto (not through the proxy), optionally inside an assumed role."""
    keys = {"aws_access_key_id": "seed", "aws_secret_access_key": "seed"}
    if role_arn:
        sts = boto3.client("sts", region_name="us-east-1", endpoint_url=url, **keys)
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="seed")["Credentials"]
        keys = {"aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"]}
    return boto3.client(service, region_name=region, endpoint_url=url, **keys)


def raw_describe_pages(boto3, url, region):
    """moto's raw DescribeInstances bodies for a region, every page, as botocore received them."""
    bodies = []
    client = account_client(boto3, url, "ec2", region)
    client.meta.events.register("before-parse.ec2.DescribeInstances",
                                lambda response_dict, **kwargs: bodies.append(response_dict["body"]))
    for _page in client.get_paginator("describe_instances").paginate():
        pass
    return bodies
