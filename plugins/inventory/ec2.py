# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: ec2
short_description: EC2 instances of several regions and accounts, queried in parallel
version_added: 0.1.0
description:
  - Lists EC2 instances of every configured region and account in parallel (O(max_workers)) and
    turns each into one host; no instance is ever dropped (see O(hostname_collision_separator)).
  - The configuration file must end with C(fleet_ec2.yml) or C(fleet_ec2.yaml), for example
    C(prod.fleet_ec2.yml).
  - The inventory cache stores the final hosts, variables and groups, so a cache hit makes no
    AWS API call and evaluates no template. A cached entry is used only for the same
    configuration; partial results (some scope failed) are never cached.
  - Cloud data (tags, names) is untrusted input and is never templated.
  - DescribeInstances answers are read by a C XML parser that copies only the documented host
    variable fields (botocore's own parser spent about ten times the CPU, which serialised the
    regions fetched in parallel); botocore still signs, sends and retries every request.
  - When several regions or accounts are listed, the answers are read in helper processes on
    the other CPU cores (see O(parse_workers)), so that regions answering together do not queue
    behind each other for the interpreter.
requirements:
  - boto3 >= 1.28.0
  - botocore >= 1.31.0
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - fleetforge.fleet.aws_credentials
  - fleetforge.fleet.cloud_inventory
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [fleetforge.fleet.ec2]
  regions:
    description:
      - Regions to list. Empty (the default) means every region enabled for the account, as
        DescribeRegions reports it (one call per account).
    type: list
    elements: str
    default: []
  filters:
    description:
      - Server-side filters of DescribeInstances, as a mapping of filter name to a value or a
        list of values, for example V(instance-state-name=running) or V(tag:Env=[prod, stage])
        written as YAML mappings.
    type: dict
    default: {}
  include_filters:
    description:
      - More filter mappings; instances matching any of them are added to those matching
        O(filters) (when O(filters) is empty, only the instances they match are listed). Each
        entry costs one more query per region.
    type: list
    elements: dict
    default: []
  exclude_filters:
    description:
      - Filter mappings; instances matching any of them are removed. Each entry costs one more
        query per region.
    type: list
    elements: dict
    default: []
  hostnames:
    description:
      - Hostname sources in order of preference; the first that an instance has is used.
      - Each entry is one of V(tag:KEY), V(instance-id), V(private-ip-address),
        V(public-ip-address) (alias V(ip-address)), V(private-dns-name), V(public-dns-name)
        (alias V(dns-name)), or a mapping with C(name) (one of those), C(prefix) (one of those)
        and C(separator) (default V(_)), giving C(<prefix value><separator><name value>).
      - An instance that has none of them fails the inventory with its id; end the list with
        V(instance-id) to be safe.
    type: list
    elements: raw
    default: [tag:Name, private-dns-name, instance-id]
  ansible_host:
    description:
      - Which address goes into C(ansible_host). V(auto) takes the public IP when the instance has
        one, else the private IP. V(none) sets no C(ansible_host) (the hostname is used).
    type: str
    choices: [private-ip-address, public-ip-address, private-dns-name, public-dns-name, auto, none]
    default: private-ip-address
  use_ssm_inventory:
    description:
      - Ask SSM (DescribeInstanceInformation, per region and account) which instances it manages;
        each host gets C(ssm_managed) and, when managed, C(ssm_ping_status).
    type: bool
    default: false
  ssm_connection:
    description:
      - With O(use_ssm_inventory), set C(ansible_connection=amazon.aws.aws_ssm),
        C(ansible_aws_ssm_instance_id) and C(ansible_aws_ssm_region) on SSM-managed hosts.
    type: bool
    default: false
  ssm_bucket_name:
    description:
      - With O(ssm_connection), the S3 bucket the aws_ssm connection transfers files through
        (C(ansible_aws_ssm_bucket_name)).
    type: str
  parse_workers:
    description:
      - How many helper processes read DescribeInstances answers while the threads wait for the
        network. Each is the controller's own Python started with C(-I -S), loading only the
        standard library and this collection's XML reader; they live for one fetch.
      - Unset (the default) means one per CPU core this process may use, at most 4 and at most
        one per thread (O(max_workers), regions times accounts); none on a single core, and
        none whenever only one thread fetches (a single region, or O(max_workers=1)).
      - V(0) reads every answer in the thread that received it. A number is also capped at one
        per thread.
      - Whatever goes wrong with a helper (it cannot start, dies, is slower than 30 s) retires
        it and the page is read in the thread instead; results never differ.
    type: int
notes:
  - Host variables (before O(hostvars_prefix)) are C(instance_id), C(instance_type), C(image_id),
    C(architecture), C(platform) (V(linux) when AWS reports none), C(launch_time) (ISO 8601),
    C(state) (C(code), C(name)), C(placement) (C(availability_zone), C(region), C(tenancy)),
    C(availability_zone), C(region), C(vpc_id), C(subnet_id), C(private_ip_address),
    C(public_ip_address), C(private_dns_name), C(public_dns_name), C(key_name),
    C(security_groups) (C(group_id), C(group_name)), C(security_group_ids), C(tags) (a mapping),
    C(iam_instance_profile) (C(arn), C(id)), C(owner_id) and C(account_id). Absent AWS fields are
    left out.
  - All hosts are in the group C(fleet_ec2).
"""

EXAMPLES = r"""
# prod.fleet_ec2.yml: running instances of two accounts, grouped by region, type and tags
plugin: fleetforge.fleet.ec2
regions: [eu-west-1, eu-central-1]
assume_roles:
  - arn:aws:iam::111111111111:role/inventory-read
  - role_arn: arn:aws:iam::222222222222:role/inventory-read
    external_id: fleet
filters:
  instance-state-name: running
hostnames:
  - tag:Name
  - name: tag:Name
    prefix: tag:Env
    separator: "-"
  - instance-id
keyed_groups:
  - key: placement.region
    prefix: region
  - key: tags.Role | default('none')
    prefix: role
groups:
  production: tags.Env | default('') == 'prod'
compose:
  ansible_user: "'admin'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/fleet-inventory
"""

import contextlib
from urllib.parse import urlsplit

from ansible.errors import AnsibleError
from ansible.utils.display import Display
from ansible_collections.fleetforge.fleet.plugins.plugin_utils import page_readers
from ansible_collections.fleetforge.fleet.plugins.plugin_utils.inventory import (
    FleetInventoryBase,
    HostRecord,
    Scope,
    ScopeError,
)

display = Display()

HOSTNAME_SOURCES = {
    "instance-id": "InstanceId",
    "private-ip-address": "PrivateIpAddress",
    "public-ip-address": "PublicIpAddress",
    "ip-address": "PublicIpAddress",
    "private-dns-name": "PrivateDnsName",
    "public-dns-name": "PublicDnsName",
    "dns-name": "PublicDnsName",
}


def _aws():
    """The AWS helpers, imported on first use: a cache hit never loads boto3 (~0.5 s)."""
    from ansible_collections.fleetforge.fleet.plugins.plugin_utils import aws
    return aws


# ------------------------------------------------------------------ pure functions
def filter_list(filters, option="filters"):
    """[{'Name': ..., 'Values': [...]}] from a mapping; AnsibleError naming a malformed entry."""
    if not isinstance(filters, dict):
        raise AnsibleError("%s must be a mapping of filter name to value(s), got %r"
                           % (option, filters))
    result = []
    for name, given in filters.items():
        if not isinstance(name, str) or not name:
            raise AnsibleError("%s: filter names must be non-empty strings, got %r" % (option, name))
        values = given if isinstance(given, list) else [given]
        if not values or any(isinstance(v, (dict, list)) or v is None for v in values):
            raise AnsibleError("%s: filter %s needs a value or a list of scalar values, got %r"
                               % (option, name, given))
        result.append({"Name": name, "Values": [str(v).lower() if isinstance(v, bool) else str(v)
                                                for v in values]})
    return result


def check_hostname_source(source):
    if not isinstance(source, str) or not ((source.startswith("tag:") and len(source) > 4)
                                           or source in HOSTNAME_SOURCES):
        raise AnsibleError("hostnames: unknown source %r; use tag:KEY or one of %s"
                           % (source, ", ".join(sorted(HOSTNAME_SOURCES))))


def normalise_hostnames(entries):
    """[(name source, prefix source or None, separator)] from the hostnames option."""
    if not isinstance(entries, list) or not entries:
        raise AnsibleError("hostnames must be a non-empty list")
    result = []
    for entry in entries:
        if isinstance(entry, dict):
            unknown = set(entry) - {"name", "prefix", "separator"}
            if unknown or "name" not in entry:
                raise AnsibleError("hostnames: a mapping entry needs 'name' and may have 'prefix' "
                                   "and 'separator', got %r" % (entry,))
            check_hostname_source(entry["name"])
            prefix = entry.get("prefix") or None
            if prefix is not None:
                check_hostname_source(prefix)
            result.append((entry["name"], prefix, str(entry.get("separator", "_"))))
        else:
            check_hostname_source(entry)
            result.append((entry, None, "_"))
    return result


def _source_value(instance, tags, source):
    value = tags.get(source[4:]) if source.startswith("tag:") else instance.get(HOSTNAME_SOURCES[source])
    if isinstance(value, str):
        value = value.strip()
    return value or None


def preferred_hostname(instance, tags, preferences):
    """The first hostname source the instance has, or None."""
    for name_source, prefix_source, separator in preferences:
        name = _source_value(instance, tags, name_source)
        if name is None:
            continue
        if prefix_source is None:
            return name
        prefix = _source_value(instance, tags, prefix_source)
        if prefix is not None:
            return "%s%s%s" % (prefix, separator, name)
    return None


def _text(value):
    return value if isinstance(value, str) else (None if value is None else str(value))


def instance_hostvars(instance, owner_id, region):
    """The host variables of one DescribeInstances instance (untrusted data: copied, not kept)."""
    tags = {}
    for tag in instance.get("Tags") or []:
        if isinstance(tag, dict) and isinstance(tag.get("Key"), str):
            tags[tag["Key"]] = _text(tag.get("Value")) or ""
    placement = instance.get("Placement") or {}
    state = instance.get("State") or {}
    launch_time = instance.get("LaunchTime")
    if hasattr(launch_time, "isoformat"):
        launch_time = launch_time.isoformat()
    zone = _text(placement.get("AvailabilityZone"))
    hostvars = {
        "instance_id": _text(instance.get("InstanceId")),
        "instance_type": _text(instance.get("InstanceType")),
        "image_id": _text(instance.get("ImageId")),
        "architecture": _text(instance.get("Architecture")),
        "platform": _text(instance.get("Platform")) or "linux",
        "launch_time": _text(launch_time),
        "state": {"code": state.get("Code"), "name": _text(state.get("Name"))},
        "placement": {"availability_zone": zone, "region": region,
                      "tenancy": _text(placement.get("Tenancy"))},
        "availability_zone": zone,
        "region": region,
        "vpc_id": _text(instance.get("VpcId")),
        "subnet_id": _text(instance.get("SubnetId")),
        "private_ip_address": _text(instance.get("PrivateIpAddress")),
        "public_ip_address": _text(instance.get("PublicIpAddress")),
        "private_dns_name": _text(instance.get("PrivateDnsName")),
        "public_dns_name": _text(instance.get("PublicDnsName")),
        "key_name": _text(instance.get("KeyName")),
        "security_groups": [{"group_id": _text(sg.get("GroupId")),
                             "group_name": _text(sg.get("GroupName"))}
                            for sg in instance.get("SecurityGroups") or [] if isinstance(sg, dict)],
        "tags": tags,
        "owner_id": _text(owner_id),
        "account_id": _text(owner_id),
    }
    hostvars["security_group_ids"] = [sg["group_id"] for sg in hostvars["security_groups"]]
    profile = instance.get("IamInstanceProfile")
    if isinstance(profile, dict):
        hostvars["iam_instance_profile"] = {"arn": _text(profile.get("Arn")),
                                            "id": _text(profile.get("Id"))}
    return {key: value for key, value in hostvars.items() if value not in (None, "")}


def connection_vars(hostvars, ansible_host, ssm=None, ssm_connection=False, bucket=None):
    """ansible_host (and the aws_ssm connection variables) for one host."""
    result = {}
    if ansible_host == "auto":
        address = hostvars.get("public_ip_address") or hostvars.get("private_ip_address")
    elif ansible_host != "none":
        address = hostvars.get(ansible_host.replace("-", "_"))
    else:
        address = None
    if address:
        result["ansible_host"] = address
    if ssm is not None and ssm_connection:
        result.update({"ansible_connection": "amazon.aws.aws_ssm",
                       "ansible_aws_ssm_instance_id": hostvars["instance_id"],
                       "ansible_aws_ssm_region": hostvars["region"]})
        if bucket:
            result["ansible_aws_ssm_bucket_name"] = bucket
    return result


# ------------------------------------------------------------------ the plugin
class InventoryModule(FleetInventoryBase):
    NAME = "fleetforge.fleet.ec2"
    CONFIG_SUFFIXES = ("fleet_ec2.yml", "fleet_ec2.yaml")
    ALL_GROUP = "fleet_ec2"

    def _validate_options(self):
        base = filter_list(self.get_option("filters"))
        includes = [filter_list(entry, "include_filters[%d]" % index)
                    for index, entry in enumerate(self.get_option("include_filters"))]
        # as in aws_ec2: empty filters with include_filters means only what they include
        self._queries = ([base] if base or not includes else []) + includes
        self._excludes = [filter_list(entry, "exclude_filters[%d]" % index)
                          for index, entry in enumerate(self.get_option("exclude_filters"))]
        self._hostnames = normalise_hostnames(self.get_option("hostnames"))
        roles = []
        for entry in self.get_option("assume_roles"):
            if isinstance(entry, str) and entry.startswith("arn:"):
                roles.append((str(entry), None))
            elif isinstance(entry, dict) and str(entry.get("role_arn", "")).startswith("arn:") \
                    and not set(entry) - {"role_arn", "external_id"}:
                roles.append((str(entry["role_arn"]), entry.get("external_id")))
            else:
                raise AnsibleError("assume_roles: each entry must be a role ARN or a mapping "
                                   "with role_arn (and external_id), got %r" % (entry,))
        self._roles = roles
        endpoint = self.get_option("endpoint_url")
        if endpoint:
            parts = urlsplit(str(endpoint))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise AnsibleError("endpoint_url must be an http:// or https:// URL, got %r"
                                   % (endpoint,))
        if self.get_option("max_workers") < 1:
            raise AnsibleError("max_workers must be at least 1")
        parse_workers = self.get_option("parse_workers")
        if parse_workers is not None and parse_workers < 0:
            raise AnsibleError("parse_workers must be 0 (read answers in the threads) or more, "
                               "got %d" % parse_workers)

    def _describe_error(self, exc):
        return _aws().describe_aws_error(exc)

    # -------------------------------------------------------------- scopes
    def _scopes(self):
        aws = _aws()
        problem = aws.require_boto3(self.NAME)  # not needed (nor imported) on a cache hit
        if problem:
            raise AnsibleError(problem)
        try:
            base = aws.AwsAccount.from_options(
                access_key=self.get_option("aws_access_key"),
                secret_key=self.get_option("aws_secret_key"),
                session_token=self.get_option("session_token"),
                profile=self.get_option("aws_profile"),
                endpoint_url=self.get_option("endpoint_url"),
                retry_mode=self.get_option("retry_mode"),
                max_attempts=self.get_option("retry_max_attempts"),
                max_workers=self.get_option("max_workers"))
        except Exception as exc:
            error = aws.describe_aws_error(exc)
            if error is None:
                raise
            raise ScopeError(str(error)) from None
        regions = [str(region) for region in self.get_option("regions")]  # plain, untagged

        def prepare(role):
            account = base if role is None else base.assume(role[0], external_id=role[1])
            return account, regions or account.enabled_regions()

        outcomes = self._run_pool(prepare, self._roles or [None])
        scopes, failures = [], []
        for role, prepared, error in outcomes:
            label = str(role[0]) if role else "default credentials"
            if error is not None:
                if error.fatal:
                    raise ScopeError("%s: %s" % (label, error))
                failures.append((label, str(error)))
                continue
            account, account_regions = prepared
            for region in account_regions:
                scope_label = "%s/%s" % (account.account_id, region) if account.account_id \
                    else region
                scopes.append(Scope(scope_label, (account, region)))
        return scopes, failures

    def _parse_workers(self, threads):
        """How many page reader processes a fetch with this many threads gets."""
        wanted = self.get_option("parse_workers")
        if wanted is None:
            wanted = min(4, page_readers.available_cpus())
            if wanted < 2:
                return 0
        return min(wanted, threads) if threads > 1 else 0

    @contextlib.contextmanager
    def _fetching(self, scopes):
        """Helper processes that read the pages of all scopes, when more than one is listed."""
        threads = self._threads_for(scopes)
        workers = self._parse_workers(threads)
        if not workers:
            yield
            return
        aws = _aws()
        # started once every thread has sent its first request: not while they prepare them,
        # and still a round trip before the first page can arrive
        readers = page_readers.PageReaders(aws.parse_describe_instances, workers,
                                           start_after=threads)
        accounts = {id(scope.data[0]): scope.data[0] for scope in scopes}.values()
        for account in accounts:
            account.page_reader = readers
        try:
            yield
        finally:
            for account in accounts:
                account.page_reader = None
            started = readers.children

            def report(readers):
                display.vvv("%s: %d page reader process(es) of %d wanted; pages read by them: %d "
                            "(%.3f s CPU, %d MiB peak RSS together), in the threads: %d%s" % (
                                self.NAME, started, workers, readers.pages_by_children,
                                readers.cpu_seconds, readers.peak_rss_kib // 1024,
                                readers.pages_in_thread,
                                "".join("; " + note for note in readers.notes)))
            # every page is read: the helpers exit and are reaped while the inventory is built
            readers.close(wait=False, reaped=report)

    # -------------------------------------------------------------- one scope
    def _instances(self, client, filters):
        for page in client.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations") or []:
                owner = reservation.get("OwnerId")
                for instance in reservation.get("Instances") or []:
                    yield owner, instance

    def _fetch(self, scope):
        account, region = scope.data
        found = {}
        with _aws().first_request_in_turn():
            client = account.client("ec2", region)
            for filters in self._queries:
                for owner, instance in self._instances(client, filters):
                    found.setdefault(instance.get("InstanceId"), (owner, instance))
        for filters in self._excludes:
            for _owner, instance in self._instances(client, filters):
                found.pop(instance.get("InstanceId"), None)
        managed = self._ssm_managed(account, region) if self.get_option("use_ssm_inventory") \
            else None
        return [(owner, instance, managed) for owner, instance in found.values()]

    def _ssm_managed(self, account, region):
        client = account.client("ssm", region)
        managed = {}
        for page in client.get_paginator("describe_instance_information").paginate():
            for info in page.get("InstanceInformationList") or []:
                managed[info.get("InstanceId")] = info.get("PingStatus")
        return managed

    def _to_record(self, raw, scope):
        owner, instance, managed = raw
        region = scope.data[1]
        hostvars = instance_hostvars(instance, owner, region)
        if "instance_id" not in hostvars:
            raise AnsibleError("%s: an instance without InstanceId in %s" % (self.NAME, scope.label))
        name = preferred_hostname(instance, hostvars["tags"], self._hostnames)
        if name is None:
            raise AnsibleError(
                "%s: instance %s in %s has none of the hostnames sources %s; add instance-id as "
                "the last entry of hostnames" % (
                    self.NAME, hostvars["instance_id"], scope.label,
                    ", ".join(entry if isinstance(entry, str) else str(entry)
                              for entry in self.get_option("hostnames"))))
        ssm = None
        if managed is not None:
            ssm = managed.get(hostvars["instance_id"])
            hostvars["ssm_managed"] = ssm is not None
            if ssm is not None:
                hostvars["ssm_ping_status"] = ssm
        connection = connection_vars(hostvars, self.get_option("ansible_host"), ssm,
                                     self.get_option("ssm_connection"),
                                     self.get_option("ssm_bucket_name"))
        order = (hostvars.get("launch_time") or "", hostvars["instance_id"])
        return HostRecord(hostvars["instance_id"], name, hostvars, connection, order)
