# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS client helpers for controller-side plugins: sessions, assumed roles, clients, errors.

One boto3 session per account and one client per (account, service, region), created once
and reused by the worker threads; retries (throttling included) are botocore's own
``standard`` or ``adaptive`` mode with exponential backoff.

EC2 clients read DescribeInstances answers with ``ec2_xml`` (regular expressions on a page
proven to be in AWS's plain form, else expat's tree; only the fields the inventory uses)
instead of botocore's model-driven parser, which held the GIL for ~0.4 s per 500 instances and
serialised the regions fetched in parallel. botocore still signs, sends,
retries and reports errors; see ``fast_describe_instances``.

Clients are built from botocore's own service models with only the operations listed in
``OPERATIONS`` (``OperationsLoader``): botocore makes a method for every operation of a model
each time it creates a client, 811 for EC2, which cost ~12 ms per region and delayed every
region's first request behind the clients of the regions before it.

Their HTTP sessions read each answer's body in one read (``WholeBodySession``) instead of
botocore's 64 KiB pieces: a tenth of the CPU per page, with the GIL not taken back per piece.
"""

from __future__ import annotations

import contextlib
import functools
import threading

try:
    import boto3
    import botocore
    import botocore.loaders
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
        SSLError,
    )
    from botocore.httpsession import URLLib3Session
    from botocore.parsers import ResponseParserError
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError
    from urllib3.exceptions import SSLError as URLLib3SSLError
except ImportError as exc:  # checked by require_boto3() with a clear message
    boto3 = None
    BOTO3_IMPORT_ERROR = exc
else:
    BOTO3_IMPORT_ERROR = None

from ansible_collections.fleetforge.fleet.plugins.plugin_utils.ec2_xml import (
    NotDescribeInstances,
    parse_describe_instances,
)
from ansible_collections.fleetforge.fleet.plugins.plugin_utils.inventory import ScopeError

MIN_BOTO3 = "1.28.0"
MIN_BOTOCORE = "1.31.0"
DEFAULT_REGION = "us-east-1"

# The operations these clients call, per service. Everything else is left out of the models the
# clients are created from (a service or version without one of them keeps its whole model).
OPERATIONS = {
    "ec2": frozenset({"DescribeInstances", "DescribeRegions"}),
    "ssm": frozenset({"DescribeInstanceInformation"}),
}


def _shapes_used(model, operations):
    """Names of the shapes that the operations' input, output and errors reach."""
    shapes = model.get("shapes", {})
    pending = []
    for name in operations:
        operation = model["operations"][name]
        pending.extend(operation[part]["shape"] for part in ("input", "output") if part in operation)
        pending.extend(error["shape"] for error in operation.get("errors", ()))
    used = set()
    while pending:
        name = pending.pop()
        if name in used or name not in shapes:
            continue
        used.add(name)
        nested = [shapes[name]]
        while nested:  # member/key/value/members, whatever nests: every {"shape": ...} below
            value = nested.pop()
            if isinstance(value, dict):
                if isinstance(value.get("shape"), str):
                    pending.append(value["shape"])
                nested.extend(value.values())
            elif isinstance(value, list):
                nested.extend(value)
    return used


def only_operations(model, operations):
    """A copy of a botocore service model (``service-2``) with only ``operations`` and the
    shapes they use; the model itself when it lacks one of them (botocore then reports it)."""
    available = model.get("operations", {})
    if not operations <= set(available):
        return model
    used = _shapes_used(model, operations)
    return dict(model, operations={name: available[name] for name in operations},
                shapes={name: shape for name, shape in model.get("shapes", {}).items()
                        if name in used})


class OperationsLoader:
    """botocore's data loader, giving the services of ``OPERATIONS`` as ``only_operations``
    models; everything else (paginators, endpoints, other services) passes through."""

    def __init__(self, loader):
        self._loader = loader
        self._models = {}
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def load_service_model(self, service_name, type_name, api_version=None):
        model = self._loader.load_service_model(service_name, type_name, api_version)
        operations = OPERATIONS.get(service_name)
        if type_name != "service-2" or not operations:
            return model
        # the loader caches the model: the same object for the same version; it is kept with
        # its copy below, so that its id() cannot be reused by another model
        with self._lock:
            key = (service_name, id(model))
            if key not in self._models:
                self._models[key] = (model, only_operations(model, operations))
            return self._models[key][1]


def new_session(**kwargs):
    """A boto3 session whose clients are built from ``OperationsLoader`` models.

    The loader is created when first used, from the session's ``data_path`` setting, as
    botocore creates its own (after boto3 has set the profile)."""
    core = botocore.session.Session()
    core.lazy_register_component("data_loader", lambda: OperationsLoader(
        botocore.loaders.create_loader(core.get_config_variable("data_path"))))
    return boto3.session.Session(botocore_session=core, **kwargs)


# error codes that mean "the configuration is wrong": the run fails
FATAL_PREFIXES = ("InvalidParameter", "InvalidFilter", "MissingParameter", "ValidationError")


def _version_tuple(text):
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def require_boto3(plugin):
    """User-facing text when boto3/botocore are missing or too old, else None."""
    if boto3 is None:
        return ("%s requires the Python libraries boto3 >= %s and botocore >= %s on the "
                "controller (pip install -r requirements.txt): %s"
                % (plugin, MIN_BOTO3, MIN_BOTOCORE, BOTO3_IMPORT_ERROR))
    if _version_tuple(boto3.__version__) < _version_tuple(MIN_BOTO3) or \
            _version_tuple(botocore.__version__) < _version_tuple(MIN_BOTOCORE):
        return ("%s requires boto3 >= %s and botocore >= %s, found boto3 %s and botocore %s"
                % (plugin, MIN_BOTO3, MIN_BOTOCORE, boto3.__version__, botocore.__version__))
    return None


def describe_aws_error(exc):
    """ScopeError naming the cause of a boto3/botocore exception, or None if it is not one."""
    if isinstance(exc, ScopeError):
        return exc
    if boto3 is None:
        return None
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", "")
        operation = getattr(exc, "operation_name", "request")
        text = "%s on %s: %s" % (code, operation, message)
        if code.startswith(FATAL_PREFIXES):
            return ScopeError(text, fatal=True)
        return ScopeError(text)
    if isinstance(exc, ParamValidationError):
        return ScopeError("invalid request parameters: %s" % exc, fatal=True)
    if isinstance(exc, NoCredentialsError):
        return ScopeError("no AWS credentials found: set aws_access_key/aws_secret_key, "
                          "aws_profile, or the AWS_* environment variables", fatal=True)
    if isinstance(exc, PartialCredentialsError):
        return ScopeError("incomplete AWS credentials: %s" % exc, fatal=True)
    if isinstance(exc, ProfileNotFound):
        return ScopeError(str(exc), fatal=True)
    if isinstance(exc, NoRegionError):
        return ScopeError("no region given: set regions", fatal=True)
    if isinstance(exc, EndpointConnectionError):
        return ScopeError("cannot reach the AWS endpoint: %s" % exc)
    if isinstance(exc, ResponseParserError):
        return ScopeError("the endpoint answered something that is not an AWS response: %s"
                          % str(exc).splitlines()[0])
    if isinstance(exc, BotoCoreError):
        return ScopeError("%s: %s" % (type(exc).__name__, exc))
    return None


# An answer with its instances taken out: botocore parses this instead of the whole page.
_EMPTY_DESCRIBE_INSTANCES = (b'<?xml version="1.0" encoding="UTF-8"?>'
                             b'<DescribeInstancesResponse><reservationSet/>'
                             b'</DescribeInstancesResponse>')


def fast_describe_instances(response_dict=None, customized_response_dict=None,
                            read=parse_describe_instances, **kwargs):
    """botocore ``before-parse.ec2.DescribeInstances`` handler: read the page with ec2_xml.

    ``read`` is ``parse_describe_instances`` or a function giving the same result (the
    account's ``read_page``, which may hand the page to a helper process). The instances found
    go into ``customized_response_dict`` (botocore merges it into its parsed answer) and
    botocore is left an empty answer to parse. Anything unexpected (an
    error status, another protocol, a botocore without ``customized_response_dict``) is left
    to botocore untouched, so the result is the same, only slower.
    """
    if response_dict is None or customized_response_dict is None:
        return
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes):
        return
    try:
        page = read(body)
    except NotDescribeInstances:
        return
    customized_response_dict.update(page)
    response_dict["body"] = _EMPTY_DESCRIBE_INSTANCES


class WholeBodySession:
    """botocore's HTTP session (wrapped), reading an answer's body in one read.

    botocore reads a body that is not streamed to the caller as ``b"".join(raw.stream())``:
    urllib3 2 hands it over in 64 KiB pieces, each through its own buffer, about 4 ms of CPU for
    a 1.7 MB DescribeInstances page here, with the GIL taken back for every piece, against
    about 0.4 ms for one ``read()`` into one buffer. The request is sent by botocore's own
    session (as a streamed answer, so that it leaves the body unread); errors while reading
    are raised as botocore raises them while reading, so retries see the same exceptions. A
    body shorter than its Content-Length is an error here (urllib3's ProtocolError, retried as
    ConnectionClosedError) where the pieces would have given the short body to the parser.
    """

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)

    def send(self, request):
        if request.stream_output:
            return self._session.send(request)
        request.stream_output = True
        try:
            response = self._session.send(request)
        finally:
            request.stream_output = False
        try:
            response._content = response.raw.read() or b""
        except URLLib3SSLError as exc:
            raise SSLError(endpoint_url=request.url, error=exc) from exc
        except URLLib3ReadTimeoutError as exc:
            raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
        except ProtocolError as exc:
            raise ConnectionClosedError(error=exc, request=request,
                                        endpoint_url=request.url) from exc
        except Exception as exc:
            raise HTTPClientError(error=exc) from exc
        return response


def read_bodies_whole(client):
    """Give the client's endpoint a WholeBodySession; a botocore whose client has no
    ``_endpoint.http_session`` of its URLLib3Session (or a subclass) is left as it is."""
    endpoint = getattr(client, "_endpoint", None)
    session = getattr(endpoint, "http_session", None)
    if isinstance(session, URLLib3Session):
        endpoint.http_session = WholeBodySession(session)


_turn_lock = threading.Lock()
_turn_state = threading.local()


def _end_turn(**kwargs):
    """botocore ``before-send`` handler: the request is ready, the next thread may prepare."""
    release = getattr(_turn_state, "release", None)
    if release is not None:
        _turn_state.release = None
        release()


@contextlib.contextmanager
def first_request_in_turn():
    """Worker threads create their client and prepare their first request one at a time.

    Both are pure-Python work under the GIL (about 15 ms per region after the first). When
    every worker does it at once, the interpreter hands the GIL round and *every* request leaves
    late, together, once all are prepared; in turns, the first request leaves as soon as it is
    ready and its wait for the answer overlaps the others' preparation. The turn ends when the
    request is handed to the HTTP layer (botocore's ``before-send``, registered on every client
    of ``AwsAccount.client``) or when the block ends, whichever comes first; retries and later
    pages do not wait for a turn.
    """
    _turn_lock.acquire()
    _turn_state.release = _turn_lock.release
    try:
        yield
    finally:
        _end_turn()


class AwsAccount:
    """One account's boto3 session and its clients, shared by worker threads.

    ``page_reader``: while set (a ``page_readers.PageReaders`` during a fetch), DescribeInstances
    pages are read through it (otherwise in the calling thread) and it is told of every request
    sent (its processes start once the first requests are out).
    """

    page_reader = None

    def __init__(self, session, config, endpoint_url=None, label=None, account_id=None):
        self.session = session
        self.config = config
        self.endpoint_url = endpoint_url
        self.label = label
        self.account_id = account_id
        self._clients = {}
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, access_key=None, secret_key=None, session_token=None, profile=None,
                     endpoint_url=None, retry_mode="standard", max_attempts=5, max_workers=8):
        if profile and (access_key or secret_key):
            raise ScopeError("aws_profile and aws_access_key/aws_secret_key are mutually "
                             "exclusive", fatal=True)
        if bool(access_key) != bool(secret_key):
            raise ScopeError("aws_access_key and aws_secret_key must be given together",
                             fatal=True)
        try:
            session = new_session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                aws_session_token=session_token, profile_name=profile or None)
        except ProfileNotFound as exc:
            raise ScopeError(str(exc), fatal=True) from None
        config = Config(retries={"mode": retry_mode, "total_max_attempts": max_attempts},
                        max_pool_connections=max(10, max_workers),
                        user_agent_extra="fleetforge.fleet")
        return cls(session, config, endpoint_url=endpoint_url, label="default")

    def client(self, service, region):
        key = (service, region)
        with self._lock:  # session.client() is not thread-safe; the clients are
            client = self._clients.get(key)
            if client is None:
                client = self.session.client(service, region_name=region, config=self.config,
                                             endpoint_url=self.endpoint_url)
                read_bodies_whole(client)
                client.meta.events.register("before-send", _end_turn,
                                            unique_id="fleetforge-end-turn")
                client.meta.events.register("before-send", self._request_sent,
                                            unique_id="fleetforge-request-sent")
                if service == "ec2":
                    client.meta.events.register(
                        "before-parse.ec2.DescribeInstances",
                        functools.partial(fast_describe_instances, read=self.read_page),
                        unique_id="fleetforge-fast-describe-instances")
                self._clients[key] = client
            return client

    def _request_sent(self, **kwargs):
        """botocore ``before-send`` handler: the page reader processes start after N requests."""
        reader = self.page_reader
        if reader is not None:
            reader.request_sent()

    def read_page(self, body):
        """A DescribeInstances page read by ``page_reader`` when one is set, else here."""
        reader = self.page_reader
        return reader.read(body) if reader is not None else parse_describe_instances(body)

    def assume(self, role_arn, session_name="fleetforge-inventory", external_id=None):
        """A new AwsAccount for the role; the role's account id comes from its ARN."""
        region = self.session.region_name or DEFAULT_REGION
        kwargs = {"RoleArn": role_arn, "RoleSessionName": session_name}
        if external_id:
            kwargs["ExternalId"] = external_id
        credentials = self.client("sts", region).assume_role(**kwargs)["Credentials"]
        session = new_session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"])
        parts = role_arn.split(":")
        account_id = parts[4] if len(parts) > 5 else None
        return AwsAccount(session, self.config, endpoint_url=self.endpoint_url,
                          label=account_id or role_arn, account_id=account_id)

    def enabled_regions(self):
        region = self.session.region_name or DEFAULT_REGION
        answer = self.client("ec2", region).describe_regions(AllRegions=False)
        return sorted(item["RegionName"] for item in answer.get("Regions", []))
