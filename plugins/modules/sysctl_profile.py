#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sysctl_profile
short_description: Apply a whole set of kernel parameters in one call (drop-in file and runtime)
version_added: 0.1.0
description:
  - Writes every setting to one drop-in file (by default C(/etc/sysctl.d/99-zz-fleetforge.conf),
    named to sort after the distribution's own files such as systemd's C(99-protect-links.conf),
    so its values win at boot), which the module owns whole, and sets the running values through
    C(/proc/sys).
  - In a container, kernel parameters that are not namespaced (C(kernel.*), C(vm.*), most C(fs.*))
    belong to the kernel of the machine running the container. The module never writes them there,
    neither at runtime nor in the file (C(systemd-sysctl) would apply the file when a privileged
    container boots), and reports them as C(not_applicable).
  - A parameter that cannot be set (read-only C(/proc/sys), a key this kernel does not have) is
    reported with its reason in RV(unsettable); the module does not fail on it.
  - Per-key results in RV(parameters) serve as audit evidence.
author: fleetforge developers (@fleetforge)
options:
  settings:
    description:
      - Kernel parameters and their wanted values, in dotted form (C(net.ipv4.ip_forward)).
      - Values are compared as whitespace-separated words, so C(4096 87380) matches a tab-separated value.
    type: dict
    required: true
  path:
    description: The drop-in file that holds the settings; the module owns its whole content.
    type: path
    default: /etc/sysctl.d/99-zz-fleetforge.conf
  apply:
    description: Also set the running values (otherwise only the file is written).
    type: bool
    default: true
  at_least:
    description:
      - Keys of O(settings) whose value is a floor, not a value to set. A running value already
        higher is kept, and the file gets that higher value, so a boot does not lower it either.
      - Their values must be whole numbers (a single word, such as C(net.unix.max_dgram_qlen)).
      - For these keys, RV(parameters) reports as C(wanted) the larger of the value given and the
        running value.
    type: list
    elements: str
    default: []
  context:
    description:
      - Where the module runs. V(auto) detects a container (C(systemd-detect-virt -c), C(/run/.containerenv),
        C(/.dockerenv), the environment of PID 1).
    type: str
    choices: [auto, host, container]
    default: auto
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Reports what would change; nothing is written.
  diff_mode:
    support: full
    description: Shows the drop-in file before and after and the running values that would change.
notes:
  - Parameters under C(net.) are per network namespace and are managed in containers too, except
    C(net.core.bpf_jit_*), which only exist in the host's namespace. A container sharing the host's
    network namespace (C(--network host)) shares its C(net.) parameters as well; the module cannot
    tell that case apart.
"""

EXAMPLES = r"""
- name: Apply the network and kernel baseline
  fleetforge.fleet.sysctl_profile:
    settings:
      net.ipv4.conf.all.accept_redirects: 0
      net.ipv4.tcp_syncookies: 1
      kernel.kptr_restrict: 2
  register: sysctls

- name: Show which keys a container could not take
  ansible.builtin.debug:
    var: sysctls.unsettable

- name: Let datagram sockets queue at least 512 messages (a higher value is kept)
  fleetforge.fleet.sysctl_profile:
    path: /etc/sysctl.d/60-socket-queues.conf
    settings:
      net.unix.max_dgram_qlen: 512
    at_least: [net.unix.max_dgram_qlen]
"""

RETURN = r"""
path:
  description: The drop-in file.
  returned: always
  type: str
  sample: /etc/sysctl.d/99-zz-fleetforge.conf
container:
  description: Whether the module treated the target as a container.
  returned: always
  type: bool
container_evidence:
  description: Why the target was (or was not) treated as a container.
  returned: always
  type: str
  sample: "systemd-detect-virt -c: podman"
parameters:
  description: Result per key, in the order given.
  returned: always
  type: dict
  contains:
    status:
      description: C(compliant) (file and running value already right), C(changed) (the module wrote
        the file line or the running value; in check mode, would write), or C(not_applicable).
      type: str
    wanted:
      description: The wanted value, normalised.
      type: str
    before:
      description: The running value before the module ran; null when unreadable.
      type: str
    after:
      description: The running value after the module ran (in check mode, the value it would set).
      type: str
    persisted:
      description: Whether the key is in the drop-in file after the run.
      type: bool
    reason:
      description: Why the key is not applicable or its running value was not set; empty otherwise.
      type: str
  sample:
    kernel.kptr_restrict:
      status: not_applicable
      wanted: "2"
      before: "0"
      after: "0"
      persisted: false
      reason: "not namespaced: in a container it is the host kernel's setting; not written"
unsettable:
  description: Keys that were not applied (not namespaced in a container, or a running value that
    could not be set), with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: The parameter.
      type: str
    reason:
      description: Why it could not be set.
      type: str
"""

import errno
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetforge.fleet.plugins.module_utils.hardening_host import (
    detect_container,
    file_change,
    read_text,
    write_atomic,
)

HEADER = "# Managed by fleetforge.fleet.sysctl_profile; local changes are overwritten.\n"
# Namespaced outside net.*: the IPC and UTS namespaces' kernel.* keys, POSIX mqueue, user ns limits.
NAMESPACED_PREFIXES = ("fs.mqueue.", "user.")
NAMESPACED_KEYS = frozenset((
    "kernel.shmmax", "kernel.shmall", "kernel.shmmni", "kernel.shm_rmid_forced",
    "kernel.msgmax", "kernel.msgmni", "kernel.msgmnb", "kernel.sem",
    "kernel.hostname", "kernel.domainname",
))
NOT_NAMESPACED = "not namespaced: in a container it is the host kernel's setting; not written"


def normalise(value):
    """Compare values as sysctl prints them: words separated by single spaces."""
    if isinstance(value, bool):
        value = int(value)
    return " ".join(str(value).split())


def is_namespaced(key):
    """True when a container's own namespaces hold the parameter (writing it stays inside)."""
    if key.startswith("net.core.bpf_jit"):
        return False
    if key.startswith("net."):
        return True
    return key in NAMESPACED_KEYS or key.startswith(NAMESPACED_PREFIXES)


def proc_path(key):
    """/proc/sys path of a key; a key written with slashes keeps its dots (interface names)."""
    if "/" in key:
        return os.path.join("/proc/sys", key.strip("/"))
    return os.path.join("/proc/sys", key.replace(".", "/"))


def render(settings, in_container):
    """The drop-in file content for the keys that may be written here."""
    lines = [HEADER]
    for key, value in settings.items():
        if in_container and not is_namespaced(key):
            continue
        lines.append("%s = %s\n" % (key, normalise(value)))
    return "".join(lines)


def parse_file(text):
    """key -> normalised value of a sysctl.d file (last one wins, comments ignored)."""
    result = {}
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        result[key.strip().lstrip("-")] = normalise(value)
    return result


def plan(settings, in_container, persisted_before, runtime, apply):
    """Per-key plan from the wanted settings and what is there.

    runtime: key -> (value or None, writable, reason it is unwritable).
    Returns key -> dict(status, wanted, before, after, persisted, reason, write).
    """
    result = {}
    for key, value in settings.items():
        wanted = normalise(value)
        current, writable, why = runtime.get(key, (None, False, "not read"))
        item = {"wanted": wanted, "before": current, "after": current, "reason": "",
                "persisted": False, "write": False}
        if in_container and not is_namespaced(key):
            item.update(status="not_applicable", reason=NOT_NAMESPACED)
            result[key] = item
            continue
        item["persisted"] = True
        file_differs = persisted_before.get(key) != wanted
        runtime_differs = apply and current != wanted
        if runtime_differs and not writable:
            item.update(status="not_applicable", reason=why)
        elif runtime_differs:
            item.update(write=True, after=wanted)
        if item.get("status") != "not_applicable":
            item["status"] = "changed" if (file_differs or item["write"]) else "compliant"
        result[key] = item
    return result


def as_whole_number(value):
    """The int of a single-word whole number, else None."""
    text = normalise(value)
    if text.lstrip("-").isdigit():
        return int(text)
    return None


def check_floors(settings, at_least):
    """Errors for at_least keys that are not in settings or whose value is not a whole number."""
    errors = []
    for key in at_least:
        if key not in settings:
            errors.append("at_least names %s, which is not in settings" % key)
        elif as_whole_number(settings[key]) is None:
            errors.append("at_least: the value of %s must be a whole number, got %r" % (key, settings[key]))
    return errors


def raise_to_running(settings, at_least, runtime):
    """settings with each floor key raised to its running value where that is higher.

    runtime: read_runtime()'s (value or None, ...) for every key of settings."""
    result = dict(settings)
    for key in at_least:
        running = as_whole_number(runtime[key][0] or "")
        if running is not None and running > as_whole_number(settings[key]):
            result[key] = running
    return result


def read_runtime(key, in_container):
    """(value, writable, reason) of the running parameter."""
    path = proc_path(key)
    try:
        with open(path) as handle:
            value = normalise(handle.read())
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None, False, "this kernel has no %s (module not loaded or not built)" % key
        return None, False, "cannot read %s: %s" % (path, exc.strerror)
    if os.access(path, os.W_OK):
        return value, True, ""
    where = "in this container" if in_container else "on this host"
    return value, False, "%s is read-only %s" % (path, where)


def write_runtime(key, value):
    """Set a running value; returns (value after, error or '')."""
    path = proc_path(key)
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except (IOError, OSError) as exc:
        return None, "writing %s failed: %s" % (path, exc.strerror)
    with open(path) as handle:
        after = normalise(handle.read())
    if after != value:
        return after, "the kernel kept %s after writing %s" % (after, value)
    return after, ""


def run_module():
    module = AnsibleModule(
        argument_spec={
            "settings": {"type": "dict", "required": True},
            "path": {"type": "path", "default": "/etc/sysctl.d/99-zz-fleetforge.conf"},
            "apply": {"type": "bool", "default": True},
            "at_least": {"type": "list", "elements": "str", "default": []},
            "context": {"type": "str", "default": "auto", "choices": ["auto", "host", "container"]},
        },
        supports_check_mode=True,
    )
    settings = module.params["settings"]
    path = module.params["path"]
    at_least = module.params["at_least"]
    errors = check_floors(settings, at_least)
    if errors:
        module.fail_json(msg="; ".join(errors))
    in_container, evidence = detect_container(module, module.params["context"])

    runtime = {}
    for key in settings:
        runtime[key] = read_runtime(key, in_container)
    settings = raise_to_running(settings, at_least, runtime)
    before_text = read_text(path)
    after_text = render(settings, in_container)
    keys = plan(settings, in_container, parse_file(before_text), runtime, module.params["apply"])

    file_changed = before_text != after_text
    if file_changed and not module.check_mode:
        write_atomic(module, path, after_text)
    unsettable = []
    for key, item in keys.items():
        if item["write"] and not module.check_mode:
            after, error = write_runtime(key, item["wanted"])
            item["after"] = after
            if error:
                item.update(status="not_applicable" if after != item["wanted"] else item["status"],
                            reason=error)
        if item["status"] == "not_applicable":
            unsettable.append({"key": key, "reason": item["reason"]})
    runtime_changed = [k for k, v in keys.items() if v["write"] and v["after"] == v["wanted"]]

    result = {
        "changed": file_changed or bool(runtime_changed),
        "path": path, "container": in_container, "container_evidence": evidence,
        "parameters": {k: {f: v for f, v in item.items() if f != "write"} for k, item in keys.items()},
        "unsettable": unsettable,
    }
    if module._diff:
        diffs = []
        if file_changed:
            diffs.append(file_change(path, before_text, after_text))
        if runtime_changed:
            diffs.append({
                "before_header": "running values", "after_header": "running values",
                "before": "".join("%s = %s\n" % (k, keys[k]["before"]) for k in runtime_changed),
                "after": "".join("%s = %s\n" % (k, keys[k]["wanted"]) for k in runtime_changed)})
        result["diff"] = diffs
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
