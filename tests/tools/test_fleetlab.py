"""The lab tool checks its input before it starts anything."""
import argparse
import importlib.util
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
SPEC = importlib.util.spec_from_file_location("fleetlab", TOOLS / "fleetlab.py")
fleetlab = importlib.util.module_from_spec(SPEC)
sys.modules["fleetlab"] = fleetlab
SPEC.loader.exec_module(fleetlab)


def args(**kw):
    base = {"host": None, "hosts": 3, "distros": "debian12,debian13"}
    base.update(kw)
    return argparse.Namespace(**base)


def test_default_hosts_alternate_distros():
    assert fleetlab.host_specs(args()) == [
        ("node1", "debian12"), ("node2", "debian13"), ("node3", "debian12")]


def test_named_hosts_win_over_count():
    specs = fleetlab.host_specs(args(host=["web:debian13", "db:debian12"]))
    assert specs == [("web", "debian13"), ("db", "debian12")]


@pytest.mark.parametrize(("kw", "message"), [
    ({"hosts": 0}, "--hosts must be at least 1"),
    ({"hosts": -2}, "--hosts must be at least 1"),
    ({"distros": " , "}, "--distros is empty"),
    ({"host": ["web"]}, "--host takes NAME:DISTRO"),
])
def test_bad_host_arguments(kw, message):
    with pytest.raises(fleetlab.LabError, match=message):
        fleetlab.host_specs(args(**kw))


def test_unknown_distro_is_refused_before_anything_starts():
    with pytest.raises(fleetlab.LabError, match="unknown distro centos7"):
        fleetlab.plan_hosts("lab", [("a", "centos7")], 30000)


def test_duplicate_names_are_refused():
    with pytest.raises(fleetlab.LabError, match="unique"):
        fleetlab.plan_hosts("lab", [("a", "debian12"), ("a", "debian13")], 30000)


def test_bad_lab_name():
    with pytest.raises(fleetlab.LabError, match="letters, digits"):
        fleetlab.plan_hosts("lab;rm", [("a", "debian12")], 30000)


def test_port_in_use_is_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        busy = sock.getsockname()[1]
        with pytest.raises(fleetlab.LabError, match=f"127.0.0.1:{busy} is already in use"):
            fleetlab.plan_hosts("lab", [("a", "debian12")], busy)


def test_auto_ports_are_free_and_consecutive():
    hosts = fleetlab.plan_hosts("lab", [("a", "debian12"), ("b", "debian13")], None)
    assert hosts[1].port == hosts[0].port + 1
    assert all(fleetlab.port_free(h.port) for h in hosts)
    assert [h.container for h in hosts] == ["lab-a", "lab-b"]


def test_image_tag_follows_the_recipe(monkeypatch):
    before = fleetlab.image_ref("debian12")
    monkeypatch.setattr(fleetlab, "BASE_PACKAGES", [*fleetlab.BASE_PACKAGES, "vim"])
    assert fleetlab.image_ref("debian12") != before
    assert before.startswith("localhost/fleetforge-lab:debian12-")


def test_missing_podman_is_named(monkeypatch):
    monkeypatch.setattr(fleetlab.shutil, "which", lambda _name: None)
    monkeypatch.setattr(fleetlab, "Path", lambda *_a: type("P", (), {"exists": lambda self: False})())
    with pytest.raises(fleetlab.LabError, match=r"missing .*podman"):
        fleetlab.cmd_doctor(argparse.Namespace(install=False))


def test_parallel_labs_never_get_the_same_ports():
    """Two `up` runs at once (molecule scenarios side by side): each chooses and publishes its
    ports under the lock, so the second sees the first's ports taken."""
    published, errors = [], []

    def start_lab(name):
        hosts = fleetlab.plan_hosts(name, [("a", "debian12"), ("b", "debian13")], None)
        try:
            with fleetlab.port_lock():
                fleetlab.assign_ports(hosts, None)
                time.sleep(0.2)  # the window in which podman starts the containers
                for host in hosts:  # what publishing the port does
                    sock = socket.socket()
                    sock.bind(("127.0.0.1", host.port))
                    sock.listen(1)
                    published.append(sock)
        except (OSError, fleetlab.LabError) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start_lab, args=(f"lab{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ports = [sock.getsockname()[1] for sock in published]
    for sock in published:
        sock.close()
    assert not errors
    assert len(ports) == 6 and len(set(ports)) == 6


def test_an_explicit_port_taken_meanwhile_is_refused():
    hosts = fleetlab.plan_hosts("lab", [("a", "debian12")], None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", hosts[0].port))
        sock.listen(1)
        with pytest.raises(fleetlab.LabError, match="already in use"):
            fleetlab.assign_ports(hosts, hosts[0].port)


def test_capabilities_are_checked_and_normalised():
    assert fleetlab.check_capabilities(["net_admin", "CAP_NET_ADMIN"]) == ["NET_ADMIN"]
    assert fleetlab.check_capabilities(None) == []
    with pytest.raises(fleetlab.LabError, match="unsupported capability SYS_MODULE"):
        fleetlab.check_capabilities(["SYS_MODULE"])


def test_a_lab_finds_only_its_own_networks(monkeypatch):
    """Lab "m-containerd" must not take lab "m-containerd_static"'s networks down with it
    (`podman network rm -f` also removes the containers attached): CI lost a scenario that way."""
    listing = "podman\nfleetlab-m-containerd\nfleetlab-m-containerd_static\n" \
              "fleetlab-m-containerd_static-int\nfleetlab-m-containerd-int\n"
    monkeypatch.setattr(fleetlab, "run", lambda *a, **k: argparse.Namespace(stdout=listing))
    assert fleetlab.existing("m-containerd", "network") == ["fleetlab-m-containerd",
                                                             "fleetlab-m-containerd-int"]
    assert fleetlab.existing("m-containerd_static", "network") == [
        "fleetlab-m-containerd_static", "fleetlab-m-containerd_static-int"]
