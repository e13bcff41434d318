#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kernel_modules
short_description: Block and load a whole set of kernel modules in one call
version_added: 0.1.0
description:
  - Blocks modules with C(install NAME /bin/false) and C(blacklist NAME) lines in one modprobe
    drop-in (by default C(/etc/modprobe.d/60-fleetforge.conf)), so neither an explicit C(modprobe)
    nor an alias can load them.
  - Persists the modules to load at boot in one C(modules-load.d) file and loads them now with C(modprobe).
  - In a container the kernel and its modules belong to the machine running the container. The files
    are written there (they describe the wanted state) but loading is reported as C(not_applicable).
  - A blocked module that is loaded now stays loaded until reboot (or C(modprobe -r)); the module
    reports it rather than unloading something in use.
author: fleetforge developers (@fleetforge)
options:
  blocklist:
    description:
      - Modules that must not load. Dashes and underscores are the same name, as for modprobe; the file
        keeps the names as given.
    type: list
    elements: str
    default: []
  load:
    description: Modules loaded at boot and now. A module in both lists is an error.
    type: list
    elements: str
    default: []
  blocklist_path:
    description: The modprobe drop-in; the module owns its whole content.
    type: path
    default: /etc/modprobe.d/60-fleetforge.conf
  load_path:
    description: The modules-load.d file; the module owns its whole content.
    type: path
    default: /etc/modules-load.d/60-fleetforge.conf
  disable_command:
    description: The command C(install) lines run instead of loading a blocked module.
    type: path
    default: /bin/false
  context:
    description: Where the module runs; V(auto) detects a container.
    type: str
    choices: [auto, host, container]
    default: auto
attributes:
  check_mode:
    support: full
    description: Reports what would change; nothing is written or loaded.
  diff_mode:
    support: full
    description: Shows both files before and after, and the modules that would be loaded.
"""

EXAMPLES = r"""
- name: Block unused filesystems and protocols, keep container networking loadable
  fleetforge.fleet.kernel_modules:
    blocklist: [cramfs, freevxfs, hfs, hfsplus, jffs2, udf, dccp, rds, sctp, tipc]
    load: [overlay, br_netfilter]
"""

RETURN = r"""
container:
  description: Whether the module treated the target as a container.
  returned: always
  type: bool
container_evidence:
  description: Why the target was (or was not) treated as a container.
  returned: always
  type: str
modules:
  description: Result per module name (normalised to underscores).
  returned: always
  type: dict
  contains:
    action:
      description: C(block) or C(load).
      type: str
    status:
      description: C(compliant), C(changed) (file line or load done, or would be in check mode), or
        C(not_applicable) (loading in a container).
      type: str
    persisted:
      description: Whether the module's line is in its file after the run.
      type: bool
    loaded:
      description: Whether the module is loaded after the run (in check mode, would be); null in a
        container, where the list of loaded modules is the host's.
      type: bool
    reason:
      description: Why loading is not applicable, or that a blocked module is still loaded; empty otherwise.
      type: str
  sample:
    cramfs: {action: block, status: compliant, persisted: true, loaded: false, reason: ""}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetforge.fleet.plugins.module_utils.hardening_host import (
    COMMAND_ENV,
    detect_container,
    file_change,
    read_text,
    write_atomic,
)

HEADER = "# Managed by fleetforge.fleet.kernel_modules; local changes are overwritten.\n"
IN_CONTAINER = "the kernel belongs to the machine running this container; modules cannot load here"


def canonical(name):
    return name.strip().replace("-", "_")


def render_blocklist(names, disable_command):
    parts = [HEADER]
    for name in names:
        parts.append("install %s %s\nblacklist %s\n" % (name, disable_command, name))
    return "".join(parts)


def render_load(names):
    return HEADER + "".join("%s\n" % name for name in names)


def blocked_in(text):
    """Names with both an install-to-disable and a blacklist line in a modprobe file."""
    installs, blacklisted = set(), set()
    for line in (text or "").splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "install":
            installs.add(canonical(words[1]))
        elif len(words) >= 2 and words[0] == "blacklist":
            blacklisted.add(canonical(words[1]))
    return installs & blacklisted


def listed_in(text):
    """Module names of a modules-load.d file."""
    names = set()
    for raw in (text or "").splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            names.add(canonical(line.split()[0]))
    return names


def loaded_names(proc_modules_text, builtin_text):
    """Loaded modules (/proc/modules) and built-in ones (modules.builtin paths)."""
    names = {canonical(line.split()[0]) for line in proc_modules_text.splitlines() if line.strip()}
    for line in builtin_text.splitlines():
        base = os.path.basename(line.strip())
        if base.endswith(".ko"):
            names.add(canonical(base[:-3]))
    return names


def plan(blocklist, load, blocked_before, listed_before, loaded, in_container):
    """Per-module plan: dict name -> action, status, persisted, loaded, reason, load_now."""
    result = {}
    for name in blocklist:
        is_loaded = None if in_container else name in loaded
        reason = ""
        if is_loaded:
            reason = "loaded now; blocked from the next boot (or after modprobe -r)"
        result[name] = {"action": "block", "persisted": True, "loaded": is_loaded, "reason": reason,
                        "load_now": False,
                        "status": "compliant" if name in blocked_before else "changed"}
    for name in load:
        item = {"action": "load", "persisted": True, "reason": "", "load_now": False}
        file_ok = name in listed_before
        if in_container:
            item.update(loaded=None, reason=IN_CONTAINER, status="not_applicable")
        else:
            item["load_now"] = name not in loaded
            item["loaded"] = True
            item["status"] = "compliant" if file_ok and not item["load_now"] else "changed"
        result[name] = item
    return result


def read_loaded():
    text = read_text("/proc/modules") or ""
    builtin = read_text("/lib/modules/%s/modules.builtin" % os.uname()[2]) or ""
    return loaded_names(text, builtin)


def run_module():
    module = AnsibleModule(
        argument_spec={
            "blocklist": {"type": "list", "elements": "str", "default": []},
            "load": {"type": "list", "elements": "str", "default": []},
            "blocklist_path": {"type": "path", "default": "/etc/modprobe.d/60-fleetforge.conf"},
            "load_path": {"type": "path", "default": "/etc/modules-load.d/60-fleetforge.conf"},
            "disable_command": {"type": "path", "default": "/bin/false"},
            "context": {"type": "str", "default": "auto", "choices": ["auto", "host", "container"]},
        },
        supports_check_mode=True,
    )
    # files keep the names as given (tools such as Lynis look for firewire-core), comparisons do not
    blocklist = [canonical(n) for n in module.params["blocklist"]]
    load = [canonical(n) for n in module.params["load"]]
    both = sorted(set(blocklist) & set(load))
    if both:
        module.fail_json(msg="modules both blocked and loaded: %s" % ", ".join(both))
    in_container, evidence = detect_container(module, module.params["context"])

    files = []
    for path, text in ((module.params["blocklist_path"],
                        render_blocklist(module.params["blocklist"], module.params["disable_command"])),
                       (module.params["load_path"], render_load(module.params["load"]))):
        files.append((path, read_text(path), text))
    loaded = set() if in_container else read_loaded()
    modules = plan(blocklist, load, blocked_in(files[0][1]), listed_in(files[1][1]), loaded, in_container)

    to_load = [name for name, item in modules.items() if item["load_now"]]
    changed_files = [f for f in files if f[1] != f[2]]
    if not module.check_mode:
        for path, _dummy, text in changed_files:
            write_atomic(module, path, text)
        if to_load:
            modprobe = module.get_bin_path("modprobe", required=True)
            for name in to_load:
                rc, out, err = module.run_command([modprobe, name], environ_update=COMMAND_ENV)
                if rc != 0:
                    module.fail_json(msg="modprobe %s failed (rc %d): %s" % (name, rc, (err or out).strip()),
                                     modules=modules)

    result = {
        "changed": bool(changed_files or to_load),
        "container": in_container, "container_evidence": evidence,
        "modules": {n: {k: v for k, v in item.items() if k != "load_now"} for n, item in modules.items()},
    }
    if module._diff:
        diffs = [file_change(path, before, after) for path, before, after in changed_files]
        if to_load:
            diffs.append({"before_header": "loaded modules", "after_header": "loaded modules",
                          "before": "", "after": "".join("%s\n" % n for n in to_load)})
        result["diff"] = diffs
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
