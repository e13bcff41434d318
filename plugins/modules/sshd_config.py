#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sshd_config
short_description: Manage an sshd drop-in that cannot lock the connecting user out
version_added: "0.1.0"
description:
  - Writes the given sshd directives as one drop-in file in C(sshd_config.d) whose name sorts
    first (sshd uses the first value it reads), and makes sure the main sshd_config includes
    that directory before any other directive.
  - Before anything is replaced, the candidate is put into a temporary copy of the whole
    configuration, validated with C(sshd -t), and its effective configuration for the
    connecting user (C(sshd -T -C user=...,host=...,addr=...)) is checked to still admit that
    user with a public key (AllowUsers, DenyUsers, AllowGroups, DenyGroups with the user's groups,
    AuthenticationMethods, PubkeyAuthentication, an authorized key in AuthorizedKeysFile,
    PermitRootLogin for root, and the port the connection arrived on). If the user would be
    refused, the module fails naming what refused it and writes nothing.
  - The drop-in that was in place before a change is kept as the last good copy in
    O(backup_dir), so a rollback can restore it.
  - The module does not reload sshd.
author: fleetforge developers (@fleetforge)
options:
  settings:
    description:
      - Directives to write, as a mapping of directive name to value.
      - Booleans become C(yes)/C(no). Lists become one comma-separated word for algorithm
        lists (C(Ciphers), C(MACs), C(KexAlgorithms), C(HostKeyAlgorithms), ...), one line per
        item for C(HostKey), C(HostCertificate), C(ListenAddress), C(Port) and C(AcceptEnv), and
        space-separated words otherwise (C(AllowUsers)). Empty lists and null values are left out.
    type: dict
    required: true
  path:
    description: Drop-in file to manage. Its name must sort before other drop-ins (cloud-init's is C(50-cloud-init.conf)).
    type: path
    default: /etc/ssh/sshd_config.d/00-fleetforge.conf
  main_config:
    description: The main sshd configuration file that must include the drop-in directory.
    type: path
    default: /etc/ssh/sshd_config
  backup_dir:
    description: Directory for the last good copies of the drop-in and the main config.
    type: path
    default: /var/lib/fleetforge/sshd
  header:
    description: Comment written at the top of the drop-in.
    type: str
    default: Managed by fleetforge.fleet.sshd_config; local changes are overwritten.
  guard_user:
    description:
      - User whose SSH access must survive the change (the user Ansible connects as).
      - Empty skips the lockout guard.
    type: str
    default: ""
  guard_addr:
    description:
      - Address the guarded user connects from. Empty reads it, with the local address and port,
        from C(SSH_CONNECTION) of the SSH session this module runs under.
    type: str
    default: ""
  guard_host:
    description: Host name the guarded user connects from, for C(USER@HOST) patterns; defaults to O(guard_addr).
    type: str
    default: ""
notes:
  - Supports check mode and diff mode; in check mode the candidate is still validated and guarded.
  - Uses C(sshd) from the target; standard library only.
"""

EXAMPLES = r"""
- name: Harden sshd without locking out the Ansible user
  fleetforge.fleet.sshd_config:
    guard_user: "{{ ansible_user }}"
    settings:
      PermitRootLogin: false
      PasswordAuthentication: false
      KexAlgorithms: [sntrup761x25519-sha512@openssh.com]
      AllowUsers: [deploy, "{{ ansible_user }}"]
  register: sshd_dropin
"""

RETURN = r"""
path:
  description: The drop-in file.
  returned: always
  type: str
backup_file:
  description: Last good copy of the drop-in (the one in place before this run); empty when there was none, in which case restoring means removing the drop-in.
  returned: always
  type: str
main_backup_file:
  description: Copy of the main config from before the Include line was added; empty when this run did not change it.
  returned: always
  type: str
include_changed:
  description: Whether the main config was (or, in check mode, would be) changed to include the drop-in directory first.
  returned: always
  type: bool
effective_before:
  description: Effective configuration (C(sshd -T)) for the guarded connection before the change; empty without O(guard_user).
  returned: always
  type: dict
effective:
  description: Effective configuration (C(sshd -T)) for the guarded connection with the candidate in place.
  returned: always
  type: dict
changed_keys:
  description: Directives of O(settings) whose effective value differs from before.
  returned: always
  type: list
  elements: str
not_effective:
  description: Directives of O(settings) whose effective value is not the one asked for (overridden elsewhere, for example by a Match block).
  returned: always
  type: list
  elements: str
guard:
  description: What the lockout guard checked (user, groups, address, key files with key types); empty without O(guard_user).
  returned: always
  type: dict
"""

import contextlib
import grp
import os
import pwd
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetforge.fleet.plugins.module_utils import sshd

ENV = {"LC_ALL": "C"}
DROPIN_MODE = 0o600
GUARD_KEYS = ("allowusers", "denyusers", "allowgroups", "denygroups", "authenticationmethods",
              "pubkeyauthentication", "authorizedkeysfile", "authorizedkeyscommand",
              "pubkeyacceptedalgorithms", "permitrootlogin", "listenaddress")


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def user_groups(user):
    entry = pwd.getpwnam(user)
    names = [g.gr_name for g in grp.getgrall() if user in g.gr_mem]
    with contextlib.suppress(KeyError):
        names.insert(0, grp.getgrgid(entry.pw_gid).gr_name)
    return entry.pw_dir, sorted(set(names), key=names.index)


def ancestor_connection():
    """SSH_CONNECTION of the nearest ancestor process that still has it and whose environ is readable."""
    pid = os.getpid()
    while pid > 1:
        found = sshd.ssh_connection_from_environ(read_text("/proc/%d/environ" % pid) or "")
        if found:
            return found
        try:
            pid = int((read_text("/proc/%d/stat" % pid) or "").rsplit(")", 1)[1].split()[1])
        except (IndexError, ValueError):
            break
    return None


def connections(guard_addr, ports):
    """Where the guarded user connects from: [(addr, local_addr, local_port)].

    The given address wins; else SSH_CONNECTION of this session (sudo drops it from our own
    environment, and a container without CAP_SYS_PTRACE cannot read it from the parents);
    else every distinct peer of an established connection to sshd's ports, all of which the
    guard must then admit.
    """
    if guard_addr:
        return [(guard_addr, "", "")]
    found = ancestor_connection()
    if found:
        return [found]
    peers = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        peers.extend(p for p in sshd.established_peers(read_text(table) or "", ports) if p not in peers)
    return peers[:16] or [("127.0.0.1", "", "")]


def write_atomic(module, path, text, mode):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fleetforge-", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    module.atomic_move(tmp, path)
    os.chmod(path, mode)  # atomic_move gives a new file the umask's mode


class Sshd:
    def __init__(self, module):
        self.module = module
        self.bin = module.get_bin_path("sshd", required=True, opt_dirs=["/usr/sbin", "/usr/local/sbin"])

    def run(self, args, what, check=True):
        rc, out, err = self.module.run_command([self.bin] + args, environ_update=ENV)
        if rc != 0 and not check:
            return ""
        if rc != 0:
            self.module.fail_json(msg="%s failed (%s): %s" % (what, " ".join([self.bin] + args), (err or out).strip()))
        return out

    def effective(self, config, spec, check=True):
        return sshd.parse_effective(self.run(["-T", "-f", config, "-C", spec], "reading the effective config", check))


def stage_candidate(tmp, main_text, dropin_dir, path, text):
    """A temporary full configuration: main config + copies of every drop-in, ours replaced."""
    staged_dir = os.path.join(tmp, "sshd_config.d")
    os.makedirs(staged_dir)
    for name in os.listdir(dropin_dir) if os.path.isdir(dropin_dir) else []:
        if name.endswith(".conf") and name != os.path.basename(path):
            shutil.copy(os.path.join(dropin_dir, name), staged_dir)
    with open(os.path.join(staged_dir, os.path.basename(path)), "w") as handle:
        handle.write(text)
    glob = os.path.join(dropin_dir, "*.conf")
    config = os.path.join(tmp, "sshd_config")
    with open(config, "w") as handle:
        handle.write(sshd.redirect_include(main_text, glob, os.path.join(staged_dir, "*.conf")))
    return config


def guard(module, daemon, config_before, config_after):
    """Effective configs before/after for the guarded connection, and why it would be refused."""
    p = module.params
    user = p["guard_user"]
    try:
        home, groups = user_groups(user)
    except KeyError:
        module.fail_json(msg="lockout guard: user %s does not exist on this host" % user)
    listening = daemon.effective(config_before, sshd.connection_spec(user, "", "127.0.0.1"), check=False)
    refusals, info, before, after = [], {}, {}, {}
    for addr, laddr, lport in connections(p["guard_addr"], sshd.listen_ports(listening)):
        host = p["guard_host"] or addr
        spec = sshd.connection_spec(user, host, addr, laddr, lport)
        after = daemon.effective(config_after, spec)
        if not info:
            before = daemon.effective(config_before, spec, check=False)  # a broken current config stays fixable
            files = sshd.expand_key_files(after.get("authorizedkeysfile", ""), user, home)
            found = {f: sshd.key_types(read_text(f) or "") for f in files}
            info = {"user": user, "groups": groups, "addr": addr, "host": host, "spec": [], "key_files": found}
        info["spec"].append(spec)
        why = (sshd.access_refusals(after, user, groups, host, addr) + sshd.auth_refusals(after, user)
               + sshd.key_refusals(after, info["key_files"]) + sshd.port_refusals(after, lport, laddr))
        refusals.extend("%s (from %s)" % (reason, addr) for reason in why if "%s (from %s)" % (reason, addr) not in refusals)
    return before, after, info, refusals


def relevant(settings, effective):
    keys = {k.lower() for k in settings} | set(GUARD_KEYS)
    return {k: v for k, v in effective.items() if k in keys}


def check_candidate(module, state, result):
    """Validate the candidate in a temporary copy and run the lockout guard; fail before any write."""
    p = module.params
    daemon = Sshd(module)
    tmp = tempfile.mkdtemp(prefix="fleetforge-sshd-")
    try:
        config_before = stage_candidate(os.path.join(tmp, "before"), state["main_before"], state["dir"],
                                        p["path"], state["before"] or "")
        config_after = stage_candidate(os.path.join(tmp, "after"), state["main_after"], state["dir"],
                                       p["path"], state["after"])
        daemon.run(["-t", "-f", config_after], "validating the candidate sshd config")
        if not p["guard_user"]:
            return
        before, after, info, refusals = guard(module, daemon, config_before, config_after)
        result.update(effective_before=relevant(p["settings"], before), effective=relevant(p["settings"], after),
                      guard=info, changed_keys=sshd.changed_keys(p["settings"], before, after),
                      not_effective=sshd.not_effective(p["settings"], after))
        if refusals:
            result["changed"] = False
            module.fail_json(msg="lockout guard: the new sshd configuration would refuse %s: %s; nothing was written"
                                 % (info["user"], "; ".join(refusals)), **result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def apply(module, state, backup, main_backup):
    """Keep the last good copies, then replace the main config and the drop-in atomically."""
    p = module.params
    if not os.path.isdir(p["backup_dir"]):
        os.makedirs(p["backup_dir"], 0o700)
    if state["before"] is not None:
        write_atomic(module, backup, state["before"], 0o600)
    elif os.path.exists(backup):
        os.unlink(backup)
    if state["main_before"] != state["main_after"]:
        write_atomic(module, main_backup, state["main_before"], 0o600)
        write_atomic(module, p["main_config"], state["main_after"], os.stat(p["main_config"]).st_mode & 0o7777)
    if state["before"] != state["after"]:
        write_atomic(module, p["path"], state["after"], DROPIN_MODE)
    elif not state["mode_ok"]:
        os.chmod(p["path"], DROPIN_MODE)


def read_state(module):
    p = module.params
    bad = sshd.bad_directive_names(p["settings"])
    if bad:
        module.fail_json(msg="settings has keys that are not sshd directive names or repeat another key: %s"
                             % ", ".join(bad))
    main_before = read_text(p["main_config"])
    if main_before is None:
        module.fail_json(msg="cannot read the main sshd config %s" % p["main_config"])
    directory = os.path.dirname(p["path"])
    main_after = sshd.ensure_include(main_before, "Include %s" % os.path.join(directory, "*.conf"))[0]
    before = read_text(p["path"])
    return {"dir": directory, "main_before": main_before, "main_after": main_after, "before": before,
            "after": sshd.render_dropin(p["settings"], p["header"]),
            "mode_ok": before is None or os.stat(p["path"]).st_mode & 0o7777 == DROPIN_MODE}


def run_module(module):
    p = module.params
    path, main_path = p["path"], p["main_config"]
    state = read_state(module)
    include_changed = state["main_before"] != state["main_after"]
    changed = include_changed or state["before"] != state["after"] or not state["mode_ok"]
    result = {"changed": changed, "path": path, "backup_file": "", "main_backup_file": "",
              "include_changed": include_changed, "effective_before": {}, "effective": {},
              "changed_keys": [], "not_effective": [], "guard": {}}
    if module._diff:
        result["diff"] = [{"before": state["before"] or "", "after": state["after"],
                           "before_header": path, "after_header": path}]
        if include_changed:
            result["diff"].append({"before": state["main_before"], "after": state["main_after"],
                                   "before_header": main_path, "after_header": main_path})
    check_candidate(module, state, result)

    backup = os.path.join(p["backup_dir"], os.path.basename(path) + ".last-good")
    main_backup = os.path.join(p["backup_dir"], os.path.basename(main_path) + ".last-good")
    result["main_backup_file"] = main_backup if include_changed else ""
    if not changed:
        result["backup_file"] = backup if os.path.exists(backup) else ""
        return result
    result["backup_file"] = backup if state["before"] is not None else ""
    if not module.check_mode:
        apply(module, state, backup, main_backup)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "settings": {"type": "dict", "required": True},
            "path": {"type": "path", "default": "/etc/ssh/sshd_config.d/00-fleetforge.conf"},
            "main_config": {"type": "path", "default": "/etc/ssh/sshd_config"},
            "backup_dir": {"type": "path", "default": "/var/lib/fleetforge/sshd"},
            "header": {"type": "str", "default": "Managed by fleetforge.fleet.sshd_config; local changes are overwritten."},
            "guard_user": {"type": "str", "default": ""},
            "guard_addr": {"type": "str", "default": ""},
            "guard_host": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    module.exit_json(**run_module(module))


if __name__ == "__main__":
    main()
