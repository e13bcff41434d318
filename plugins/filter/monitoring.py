# Copyright: (c) 2026, fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring: Prometheus targets from the inventory, firewall sources, basic-auth hashes.

Pure functions over the inventory (host names and their variables, as ``hostvars`` gives them)::

    scrape_targets(hosts, hostvars, ...)     -> file_sd entries, one per host
    monitoring_sources(hosts, hostvars, ...) -> the addresses monitoring hosts scrape from
    basic_auth_hashes(users, existing)       -> {user: bcrypt hash}, reusing hashes that verify

Inventory values are untrusted input: every address and label is checked before it lands in a
Prometheus target file or an nftables rule.
"""
from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes, to_text

try:
    import bcrypt
    HAS_BCRYPT = True
except ImportError:
    HAS_BCRYPT = False

DEFAULT_ADDRESS_VARS = ("ansible_host",)
DEFAULT_SOURCE_VARS = ("ansible_facts.default_ipv4.address", "ansible_facts.default_ipv6.address",
                       "ansible_host")
DEFAULT_LABEL_VARS = {
    "region": ["fleet_region", "placement.region", "region"],
    "role": ["fleet_role", "fleet_workload_profile"],
}
META_PREFIX = "__meta_fleet_"
SKIPPED_GROUPS = ("all", "ungrouped")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


# ------------------------------------------------------------------ reading the inventory
def _lookup(hostvars_of_host, path):
    """The value at a dotted path (``placement.region``) of one host's variables, or None."""
    value = hostvars_of_host
    for part in path.split("."):
        if isinstance(value, (str, bytes)):
            return None
        try:
            if part not in value:
                return None
            value = value[part]
        except TypeError:
            return None
    return value


def _first(hostvars_of_host, paths):
    for path in paths:
        value = _lookup(hostvars_of_host, path)
        if value is not None and to_text(value).strip():
            return to_text(value).strip()
    return None


def _host_vars(hostvars, host):
    try:
        return hostvars[host]
    except KeyError:
        raise AnsibleFilterError("host %r is not in the inventory" % host) from None


def _as_ip(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _check_address(host, address):
    if _as_ip(address) is None and not HOSTNAME.match(address):
        raise AnsibleFilterError("host %s: %r is neither an IP address nor a DNS name" % (host, address))
    return address


def _hostport(address, port):
    ip = _as_ip(address)
    if ip is not None and ip.version == 6:
        return "[%s]:%d" % (address, port)
    return "%s:%d" % (address, port)


def _port(host, value):
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise AnsibleFilterError("host %s: port %r is not a TCP port" % (host, value))
    return port


def _hosts(hosts):
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("expected a list of host names, got %s" % type(hosts).__name__)
    return sorted({to_text(h) for h in hosts})


# ------------------------------------------------------------------ scrape targets
def scrape_targets(hosts, hostvars, port_var="node_exporter_port", default_port=9100,
                   address_vars=DEFAULT_ADDRESS_VARS, label_vars=None):
    """Prometheus file_sd entries for ``hosts``, one per host, sorted by host name.

    The address is the first non-empty variable of ``address_vars`` (dotted paths allowed), else
    the inventory name. Labels are ``__meta_fleet_*`` so that the scrape job decides with
    relabelling what becomes a real label: ``hostname`` (inventory name), ``groups``
    (``,a,b,``, the inventory groups), and one per ``label_vars`` entry (first variable found).
    """
    label_vars = DEFAULT_LABEL_VARS if label_vars is None else label_vars
    if not isinstance(label_vars, dict):
        raise AnsibleFilterError("label_vars must be a dict of label name to a list of variable names")
    for name, paths in label_vars.items():
        if not LABEL_NAME.match(to_text(name)) or name in ("hostname", "groups"):
            raise AnsibleFilterError("label_vars: %r is not a usable label name" % (name,))
        if isinstance(paths, (str, bytes)) or not isinstance(paths, (list, tuple)):
            raise AnsibleFilterError("label_vars[%s] must be a list of variable names" % name)
    entries = []
    for host in _hosts(hosts):
        hv = _host_vars(hostvars, host)
        address = _check_address(host, _first(hv, list(address_vars)) or host)
        port = _port(host, _first(hv, [port_var]) or default_port)
        groups = sorted(g for g in (_lookup(hv, "group_names") or []) if g not in SKIPPED_GROUPS)
        labels = {META_PREFIX + "hostname": host,
                  META_PREFIX + "groups": "," + ",".join(groups) + "," if groups else ""}
        for name, paths in sorted(label_vars.items()):
            value = _first(hv, list(paths))
            if value is not None:
                labels[META_PREFIX + name] = value
        entries.append({"targets": [_hostport(address, port)], "labels": labels})
    return entries


# ------------------------------------------------------------------ firewall sources
def monitoring_sources(hosts, hostvars, address_vars=DEFAULT_SOURCE_VARS):
    """The network (``a.b.c.d/32``, ``x::y/128``) each monitoring host scrapes from, sorted.

    The first variable of ``address_vars`` holding an IP address wins; a host without one fails:
    a firewall rule cannot be written for a name.
    """
    sources = set()
    for host in _hosts(hosts):
        hv = _host_vars(hostvars, host)
        ip = None
        for path in address_vars:
            value = _lookup(hv, path)
            ip = _as_ip(to_text(value).strip()) if value is not None else None
            if ip is not None:
                break
        if ip is None:
            raise AnsibleFilterError(
                "monitoring host %s has no IP address in %s (gather its facts or set one)"
                % (host, ", ".join(address_vars)))
        sources.add(ipaddress.ip_network(ip))
    return [str(net) for net in sorted(sources, key=lambda n: (n.version, n))]


# ------------------------------------------------------------------ basic auth
def _verifies(password, hashed):
    try:
        return bcrypt.checkpw(to_bytes(password), to_bytes(hashed))
    except ValueError:
        return False


def basic_auth_hashes(users, existing=None, rounds=12):
    """``{user: bcrypt hash}`` for ``{user: password}``.

    A hash from ``existing`` (the web configuration on the host) is kept when the password still
    verifies against it, so a run that changes no password changes no file.
    """
    if not HAS_BCRYPT:
        raise AnsibleFilterError("basic_auth_hashes needs the Python package bcrypt on the controller")
    if not isinstance(users, dict):
        raise AnsibleFilterError("users must be a dict of user name to password")
    existing = existing or {}
    if not isinstance(existing, dict):
        raise AnsibleFilterError("existing must be a dict of user name to bcrypt hash")
    result = {}
    for user, password in sorted(users.items()):
        if not to_text(user) or ":" in to_text(user):
            raise AnsibleFilterError("basic auth user name %r is empty or holds ':'" % (user,))
        if password is None or not to_text(password):
            raise AnsibleFilterError("basic auth user %s has an empty password" % user)
        old = to_text(existing.get(user) or "")
        if old.startswith(BCRYPT_PREFIXES) and _verifies(password, old):
            result[to_text(user)] = old
        else:
            result[to_text(user)] = to_text(bcrypt.hashpw(to_bytes(password), bcrypt.gensalt(rounds)))
    return result


class FilterModule:
    """Monitoring filters."""

    def filters(self):
        return {
            "scrape_targets": scrape_targets,
            "monitoring_sources": monitoring_sources,
            "basic_auth_hashes": basic_auth_hashes,
        }
