#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: file_modes
short_description: Set mode, owner and group of many existing paths in one call
version_added: 0.1.0
description:
  - Takes the whole list of paths (sensitive files, cron directories, log files) and sets each
    one's permissions and ownership, returning a status per path for audit evidence.
  - A mode is either exact (O(paths[].mode)) or a ceiling (O(paths[].max_mode)) that only removes
    permission bits, so a file that is already stricter than the benchmark asks stays as it is.
  - The module never creates files. A missing path fails the module before anything changes,
    unless O(paths[].missing_ok) is set; it is then reported as C(not_applicable).
  - Symbolic links are not followed and are reported as C(not_applicable).
author: fleetforge developers (@fleetforge)
options:
  paths:
    description: The paths and what they should be.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      mode:
        description: Exact octal mode as a string, for example V('0600').
        type: str
      max_mode:
        description: Octal ceiling, for example V('0640'); bits outside it are removed, none are added.
        type: str
      owner:
        description: User name or numeric id.
        type: str
      group:
        description: Group name or numeric id.
        type: str
      missing_ok:
        description: A missing path is C(not_applicable) instead of an error.
        type: bool
        default: false
attributes:
  check_mode:
    support: full
    description: Reports what would change; nothing is changed.
  diff_mode:
    support: full
    description: Lists mode, owner and group of every path that changes, before and after.
"""

EXAMPLES = r"""
- name: Restrict access to account databases and cron
  fleetforge.fleet.file_modes:
    paths:
      - {path: /etc/passwd, mode: "0644", owner: root, group: root}
      - {path: /etc/shadow, max_mode: "0640", owner: root, group: shadow}
      - {path: /etc/cron.d, mode: "0700", owner: root, group: root}
      - {path: /etc/security/opasswd, mode: "0600", owner: root, group: root, missing_ok: true}
"""

RETURN = r"""
paths:
  description: Result per path, in the order given.
  returned: always
  type: dict
  contains:
    status:
      description: C(compliant), C(changed) (or would change in check mode), or C(not_applicable).
      type: str
    before:
      description: Mode (octal string), owner and group before the run; null when missing.
      type: dict
    after:
      description: Mode, owner and group after the run (in check mode, what they would be); null when missing.
      type: dict
    reason:
      description: Why the path is not applicable; empty otherwise.
      type: str
  sample:
    /etc/shadow:
      status: compliant
      before: {mode: "0640", owner: root, group: shadow}
      after: {mode: "0640", owner: root, group: shadow}
      reason: ""
"""

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

ITEM_SPEC = {
    "path": {"type": "path", "required": True},
    "mode": {"type": "str"},
    "max_mode": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "missing_ok": {"type": "bool", "default": False},
}


def parse_mode(text):
    """An octal mode string ('0640', '640') as an int, or None when it is not one."""
    text = (text or "").strip()
    if not text or len(text) > 5 or any(c not in "01234567" for c in text):
        return None
    return int(text, 8)


def wanted_mode(current, mode, max_mode):
    """The permission bits a path should have (file type bits excluded)."""
    if mode is not None:
        return mode
    if max_mode is not None:
        return current & max_mode
    return current


def describe(mode, uid, gid):
    return {"mode": "%04o" % mode, "owner": user_name(uid), "group": group_name(gid)}


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def resolve_id(name, lookup, field):
    """Numeric id of a user or group name (digits are taken as ids); None when unknown."""
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    try:
        return getattr(lookup(name), field)
    except KeyError:
        return None


def check_item(item):
    """Input errors of one item, as a list of messages."""
    errors = []
    if item["mode"] is not None and item["max_mode"] is not None:
        errors.append("%s: give mode or max_mode, not both" % item["path"])
    for field in ("mode", "max_mode"):
        if item[field] is not None and parse_mode(item[field]) is None:
            errors.append("%s: %s %r is not an octal mode" % (item["path"], field, item[field]))
    if resolve_id(item["owner"], pwd.getpwnam, "pw_uid") is None and item["owner"] is not None:
        errors.append("%s: unknown owner %s" % (item["path"], item["owner"]))
    if resolve_id(item["group"], grp.getgrnam, "gr_gid") is None and item["group"] is not None:
        errors.append("%s: unknown group %s" % (item["path"], item["group"]))
    return errors


def plan_item(item, st):
    """(status, before, after, reason, (mode, uid, gid) to apply or None) for one path."""
    if st is None:
        return "not_applicable", None, None, "does not exist", None
    if stat.S_ISLNK(st.st_mode):
        return "not_applicable", None, None, "is a symbolic link; not followed", None
    current = stat.S_IMODE(st.st_mode)
    mode = wanted_mode(current, parse_mode(item["mode"]), parse_mode(item["max_mode"]))
    uid = resolve_id(item["owner"], pwd.getpwnam, "pw_uid")
    gid = resolve_id(item["group"], grp.getgrnam, "gr_gid")
    uid = st.st_uid if uid is None else uid
    gid = st.st_gid if gid is None else gid
    before = describe(current, st.st_uid, st.st_gid)
    after = describe(mode, uid, gid)
    if (mode, uid, gid) == (current, st.st_uid, st.st_gid):
        return "compliant", before, after, "", None
    return "changed", before, after, "", (mode, uid, gid)


def lstat_or_none(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def diff_line(path, desc):
    return "%s %s %s:%s\n" % (path, desc["mode"], desc["owner"], desc["group"])


def run_module():
    module = AnsibleModule(
        argument_spec={"paths": {"type": "list", "elements": "dict", "required": True, "options": ITEM_SPEC}},
        supports_check_mode=True,
    )
    items = module.params["paths"]
    errors = []
    for item in items:
        errors.extend(check_item(item))
    stats = {item["path"]: lstat_or_none(item["path"]) for item in items}
    errors.extend("%s: does not exist" % item["path"] for item in items
                  if stats[item["path"]] is None and not item["missing_ok"])
    if errors:
        module.fail_json(msg="file_modes: nothing changed; " + "; ".join(errors))

    paths, before_lines, after_lines = {}, [], []
    for item in items:
        status, before, after, reason, change = plan_item(item, stats[item["path"]])
        paths[item["path"]] = {"status": status, "before": before, "after": after, "reason": reason}
        if change is None:
            continue
        before_lines.append(diff_line(item["path"], before))
        after_lines.append(diff_line(item["path"], after))
        if not module.check_mode:
            mode, uid, gid = change
            try:
                os.lchown(item["path"], uid, gid)
                os.chmod(item["path"], mode)
            except OSError as exc:
                wanted = diff_line("", after).strip()
                module.fail_json(msg="cannot set %s to %s: %s" % (item["path"], wanted, exc.strerror), paths=paths)

    result = {"changed": bool(after_lines), "paths": paths}
    if module._diff:
        result["diff"] = {"before_header": "file modes", "after_header": "file modes",
                          "before": "".join(before_lines), "after": "".join(after_lines)}
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
