#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: docker_daemon_config
short_description: Write Docker's daemon.json only after the installed dockerd accepted it
version_added: 0.1.0
description:
  - Renders O(config) as Docker's C(daemon.json) (sorted keys, two-space indent) and replaces the file
    only when the content differs and the installed C(dockerd) accepted the new file.
  - Docker 23 and later validate with C(dockerd --validate --config-file FILE).
  - Docker before 23 has no C(--validate); the module starts a trial daemon with the new settings on a
    scratch socket, data root, exec root, pidfile and containerd namespace, waits until it answers
    C(/_ping), and stops it. The trial runs with C(bridge=none) and C(iptables=false) so it never
    touches the running daemon's network; the bridge address settings (C(bip), C(fixed-cidr),
    C(default-gateway)) and C(metrics-addr) are therefore left out of the trial and are only
    checked by the real restart.
  - A refused configuration fails the task naming dockerd's reason; the file on disk stays as it was,
    so a handler restarting Docker never runs on it.
  - The module does not restart Docker; notify a handler from the task.
author: fleetforge developers (@fleetforge)
options:
  config:
    description: The whole content of C(daemon.json) as a dictionary; the module owns the file.
    type: dict
    required: true
  path:
    description: The file to write.
    type: path
    default: /etc/docker/daemon.json
  validate:
    description:
      - How to check the new file before it replaces the old one. V(auto) uses V(flag) on Docker 23
        and later and V(trial) before. V(none) writes without a check.
    type: str
    choices: [auto, flag, trial, none]
    default: auto
  dockerd:
    description: The dockerd binary; by default found on the PATH, C(/usr/sbin) and C(/usr/local/bin).
    type: path
  trial_timeout:
    description: Seconds the trial daemon has to answer on its socket.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Reports whether the file would change; nothing is validated or written.
  diff_mode:
    support: full
    description: Shows the file before and after.
"""

EXAMPLES = r"""
- name: Write daemon.json, validated by the installed dockerd
  fleetforge.fleet.docker_daemon_config:
    config:
      exec-opts: [native.cgroupdriver=systemd]
      log-driver: json-file
      log-opts: {max-size: 10m, max-file: "3"}
      live-restore: true
  notify: Restart docker
"""

RETURN = r"""
validation:
  description: How the new file was checked; C(unchanged) when nothing was written, C(check_mode)
    when it would have been checked, C(none) when asked not to.
  returned: always
  type: str
  choices: [flag, trial, none, unchanged, check_mode]
dockerd_version:
  description: The version C(dockerd --version) reports; empty when dockerd was not run.
  returned: always
  type: str
  sample: 20.10.24+dfsg1
config:
  description: The configuration the file holds after the run (in check mode, would hold).
  returned: always
  type: dict
"""

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetforge.fleet.plugins.module_utils.hardening_host import (
    COMMAND_ENV,
    file_change,
    read_text,
    write_atomic,
)

FIRST_VALIDATE_MAJOR = 23
# Settings a trial daemon must not share with the running one, or that clash with bridge=none.
TRIAL_DROPPED = ("bip", "fixed-cidr", "fixed-cidr-v6", "default-gateway", "default-gateway-v6",
                 "metrics-addr", "hosts", "pidfile", "exec-root", "data-root")
TRIAL_LOG_LINES = 5
TIMEOUT_RC = 124
# Scratch data roots of trial daemons (not /tmp: it may be a small tmpfs).
TRIAL_PARENT = "/var/lib"


def render(config):
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def parse_version(text):
    """'Docker version 20.10.24+dfsg1, build 297e128' -> ('20.10.24+dfsg1', (20, 10, 24))."""
    match = re.search(r"version\s+v?((\d+)\.(\d+)\.(\d+)\S*?),?(\s|$)", text or "")
    if not match:
        return "", ()
    return match.group(1), tuple(int(match.group(i)) for i in (2, 3, 4))


def choose_method(requested, version):
    if requested != "auto":
        return requested
    return "flag" if version and version[0] >= FIRST_VALIDATE_MAJOR else "trial"


def trial_config(config, scratch):
    """The settings of a trial daemon: the new ones, isolated from the running daemon."""
    trial = {k: v for k, v in config.items() if k not in TRIAL_DROPPED}
    trial.update({
        "hosts": ["unix://%s/docker.sock" % scratch],
        "pidfile": "%s/docker.pid" % scratch,
        "exec-root": "%s/exec" % scratch,
        "data-root": "%s/data" % scratch,
        "containerd-namespace": "fleetforge-trial",
        "containerd-plugins-namespace": "fleetforge-trial-plugins",
        "bridge": "none",
        "iptables": False,
    })
    if "ip6tables" in trial:
        trial["ip6tables"] = False
    return trial


def log_tail(text, lines=TRIAL_LOG_LINES):
    """The lines of a dockerd log that say why it stopped: errors and plain messages, else the tail."""
    all_lines = (text or "").strip().splitlines()
    telling = [line for line in all_lines
               if not line.startswith("time=") or "level=error" in line or "level=fatal" in line]
    return "\n".join((telling or all_lines)[-lines:])


def ping(sock_path, timeout=2.0):
    """True when a Docker API answers OK to GET /_ping on the unix socket."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(sock_path)
        client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        answer = client.recv(4096)
    except (OSError, socket.error):
        return False
    finally:
        client.close()
    return answer.startswith(b"HTTP/1.") and answer.rstrip().endswith(b"OK")


def mounts_under(path, mountinfo):
    """Mount points at or below path in /proc/self/mountinfo text, deepest first."""
    found = []
    for line in (mountinfo or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and (fields[4] == path or fields[4].startswith(path + "/")):
            found.append(fields[4])
    return sorted(found, key=len, reverse=True)


def cleanup_scratch(module, scratch):
    umount = module.get_bin_path("umount")
    if umount:
        for point in mounts_under(scratch, read_text("/proc/self/mountinfo")):
            module.run_command([umount, "-l", point], environ_update=COMMAND_ENV)
    shutil.rmtree(scratch, ignore_errors=True)


def read_pid(path):
    try:
        return int((read_text(path) or "").strip())
    except ValueError:
        return None


def watch_trial(sock_path, pid_path, answered, done, interval=0.5):
    """Until done is set: when the trial daemon answers, note it and ask the daemon to stop."""
    while not done.is_set():
        if ping(sock_path):
            answered.set()
            pid = read_pid(pid_path)
            if pid:
                os.kill(pid, signal.SIGTERM)
            return
        done.wait(interval)


def run_trial(module, dockerd, config, timeout):
    """Run dockerd with the new settings on scratch paths until it answers /_ping; (ok, reason).

    coreutils' timeout bounds the trial; a watcher thread pings the scratch socket and stops the
    daemon through its pidfile once it answered."""
    scratch = tempfile.mkdtemp(prefix="fleetforge-dockerd-trial-", dir=TRIAL_PARENT)
    trial = trial_config(config, scratch)
    conf_path = os.path.join(scratch, "daemon.json")
    with open(conf_path, "w") as handle:
        handle.write(render(trial))
    answered, done = threading.Event(), threading.Event()
    watcher = threading.Thread(target=watch_trial,
                               args=(os.path.join(scratch, "docker.sock"), trial["pidfile"], answered, done))
    watcher.daemon = True
    try:
        timeout_bin = module.get_bin_path("timeout", required=True)
        watcher.start()
        rc, out, err = module.run_command(
            [timeout_bin, "--kill-after=20", str(timeout), dockerd, "--config-file", conf_path],
            environ_update=COMMAND_ENV)
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
        cleanup_scratch(module, scratch)
    if answered.is_set():
        return True, ""
    if rc == TIMEOUT_RC:
        return False, "the trial dockerd did not answer on its socket within %ss: %s" % (
            timeout, log_tail(err or out))
    return False, "the trial dockerd exited (rc %s): %s" % (rc, log_tail(err or out))


def validate(module, method, dockerd, config, candidate, timeout):
    """(ok, reason) for the candidate file holding config."""
    if method == "flag":
        rc, out, err = module.run_command([dockerd, "--validate", "--config-file", candidate],
                                          environ_update=COMMAND_ENV)
        return rc == 0, (err or out).strip()
    if method == "trial":
        return run_trial(module, dockerd, config, timeout)
    return True, ""


def find_dockerd(module):
    if module.params["dockerd"]:
        return module.params["dockerd"]
    return module.get_bin_path("dockerd", required=True, opt_dirs=["/usr/sbin", "/usr/local/bin"])


def run_module():
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "dict", "required": True},
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "validate": {"type": "str", "default": "auto", "choices": ["auto", "flag", "trial", "none"]},
            "dockerd": {"type": "path"},
            "trial_timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    path, config = module.params["path"], module.params["config"]
    before = read_text(path)
    after = render(config)
    result = {"changed": before != after, "config": config, "dockerd_version": "",
              "validation": "unchanged"}
    if module._diff:
        result["diff"] = file_change(path, before, after) if result["changed"] else {}
    if not result["changed"]:
        module.exit_json(**result)
    if module.check_mode:
        result["validation"] = "check_mode"
        module.exit_json(**result)

    method = module.params["validate"]
    if method != "none":
        dockerd = find_dockerd(module)
        rc, out, err = module.run_command([dockerd, "--version"], environ_update=COMMAND_ENV)
        result["dockerd_version"], version = parse_version(out)
        if rc != 0 or not version:
            module.fail_json(msg="cannot tell the Docker version from '%s --version' (rc %d): %s"
                             % (dockerd, rc, (err or out).strip()), **result)
        method = choose_method(method, version)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, candidate = tempfile.mkstemp(dir=directory, prefix=".fleetforge-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(after)
            ok, reason = validate(module, method, dockerd, config, candidate, module.params["trial_timeout"])
        finally:
            os.unlink(candidate)
        if not ok:
            result.update(changed=False, validation=method)
            result.pop("diff", None)
            module.fail_json(msg="dockerd %s refused the new configuration (%s check); %s is unchanged: %s"
                             % (result["dockerd_version"], method, path, reason), **result)
    result["validation"] = method
    write_atomic(module, path, after)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
