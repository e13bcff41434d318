"""The lab tool's command line: bad input gets a clear error and leaves nothing behind.

Needs podman (the full suite installs it); runs on the .venv only.
"""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = [sys.executable, str(REPO / "tools" / "fleetlab.py")]


def lab_containers(name):
    out = subprocess.run(["podman", "ps", "-a", "--filter", f"label=fleetforge.lab={name}",
                          "--format", "json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


@pytest.mark.parametrize(("argv", "message"), [
    (["--host", "a:centos7"], "unknown distro centos7"),
    (["--hosts", "0"], "--hosts must be at least 1"),
    (["--host", "a:debian12", "--host", "a:debian13"], "host names must be unique"),
])
def test_bad_input_is_refused_and_nothing_is_created(argv, message):
    proc = subprocess.run([*LAB, "up", "--name", "itest-bad", *argv], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert lab_containers("itest-bad") == []


def test_port_in_use_is_refused_and_nothing_is_created():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        busy = sock.getsockname()[1]
        # the first host's port is free, the second's is taken: nothing may start
        proc = subprocess.run([*LAB, "up", "--name", "itest-port", "--host", "a:debian12",
                               "--host", "b:debian12", "--port-base", str(busy - 1)],
                              capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert f"127.0.0.1:{busy} is already in use" in proc.stderr
    assert lab_containers("itest-port") == []


def test_up_ssh_and_down():
    """A one-host lab: real SSH as the non-root admin, sudo works, root login does not."""
    name = "itest-up"
    try:
        proc = subprocess.run([*LAB, "up", "--name", name, "--host", "h1:debian12"],
                              capture_output=True, text=True, check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr
        state = json.loads((REPO / ".lab" / name / "state.json").read_text())
        port = state["hosts"][0]["port"]
        key = REPO / ".lab" / name / "id_ed25519"
        ssh = ["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
               "-o", "LogLevel=ERROR"]
        who = subprocess.run([*ssh, "fleetadmin@127.0.0.1", "id -un; sudo -n id -un"],
                             capture_output=True, text=True, check=False, timeout=60)
        assert who.stdout.split() == ["fleetadmin", "root"], who.stderr
        as_root = subprocess.run([*ssh, "root@127.0.0.1", "true"], capture_output=True,
                                 text=True, check=False, timeout=60)
        assert as_root.returncode != 0
        unprivileged = subprocess.run(
            ["podman", "inspect", "-f", "{{.HostConfig.Privileged}}", f"{name}-h1"],
            capture_output=True, text=True, check=True).stdout.strip()
        assert unprivileged == "false"
    finally:
        subprocess.run([*LAB, "down", "--name", name], capture_output=True, check=False)
    assert lab_containers(name) == []
