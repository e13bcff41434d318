# -*- coding: utf-8 -*-
# Copyright: fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Target-side helpers shared by the hardening modules (sysctl_profile, kernel_modules,
file_modes): where the module runs (a container or a host with its own kernel), and whole-file
drop-ins written atomically with a diff. Standard library only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

# systemd-detect-virt -c names these; /proc/1/environ carries container=NAME.
CONTAINER_MARKERS = ("/run/.containerenv", "/.dockerenv")
COMMAND_ENV = {"LC_ALL": "C", "LANG": "C"}


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def pid1_container(environ_bytes):
    """The container= value from PID 1's environment (bytes of /proc/1/environ), or ''."""
    for entry in environ_bytes.split(b"\0"):
        if entry.startswith(b"container="):
            return entry.split(b"=", 1)[1].decode("utf-8", "replace")
    return ""


def detect_container(module, context="auto"):
    """(in_container, evidence). context 'host' or 'container' overrides detection."""
    if context == "host":
        return False, "context=host given"
    if context == "container":
        return True, "context=container given"
    tool = module.get_bin_path("systemd-detect-virt")
    if tool:
        rc, out, _dummy = module.run_command([tool, "-c"], environ_update=COMMAND_ENV)
        name = out.strip()
        if rc == 0 and name and name != "none":
            return True, "systemd-detect-virt -c: %s" % name
    for marker in CONTAINER_MARKERS:
        if os.path.exists(marker):
            return True, "%s exists" % marker
    try:
        with open("/proc/1/environ", "rb") as handle:
            name = pid1_container(handle.read())
    except (IOError, OSError):
        name = ""
    if name:
        return True, "PID 1 environment: container=%s" % name
    return False, "no container detected (systemd-detect-virt, marker files, PID 1 environment)"


def write_atomic(module, path, content, mode=0o644):
    """Write content to path through a temporary file in the same directory."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, 0o755)
        except OSError as exc:
            module.fail_json(msg="cannot create directory %s for %s: %s" % (directory, path, exc))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fleetforge-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
    except (IOError, OSError) as exc:
        os.unlink(tmp)
        module.fail_json(msg="cannot write %s: %s" % (path, exc))
    module.atomic_move(tmp, path)
    os.chmod(path, mode)


def file_change(path, before, after):
    """A diff dict for one whole file (before None = absent)."""
    return {"before_header": path, "after_header": path,
            "before": before or "", "after": after}
