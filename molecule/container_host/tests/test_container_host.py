"""A hardened container host (linux_hardening, profile container_host) still runs containers."""
import sys
from pathlib import Path

# the containerd scenario's image builder (stand-alone, standard library only)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "containerd" / "tests"))
from oci_image import busybox_run


def _sudo(host, cmd):
    with host.sudo():
        return host.run(cmd)


def test_hardening_kept_forwarding_on(host):
    assert _sudo(host, "sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
    assert _sudo(host, "sysctl -n net.ipv6.conf.all.forwarding").stdout.strip() == "1"


def test_overlay_and_br_netfilter_are_not_blocked(host):
    rules = _sudo(host, "cat /etc/modprobe.d/*.conf").stdout.split("\n")
    for module in ("overlay", "br_netfilter"):
        assert not [line for line in rules if line.split()[1:2] == [module]
                    and line.split()[0] in ("install", "blacklist")], module
    loaded_at_boot = _sudo(host, "cat /etc/modules-load.d/*.conf").stdout.split()
    assert "overlay" in loaded_at_boot and "br_netfilter" in loaded_at_boot


def test_hardening_is_in_place(host):
    # the baseline did run: the firewall table and the login.defs umask are there
    assert "table inet fleetforge" in _sudo(host, "nft list tables").stdout
    assert _sudo(host, "grep -E '^UMASK' /etc/login.defs").stdout.split()[1] == "027"


def test_containerd_runs_a_container_on_the_hardened_host(host):
    assert host.service("containerd").is_running
    run = busybox_run(host, snapshotter="native")
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == "hello from Linux"


def test_unknown_engine_fails_before_any_change(host, run_playbook):
    playbook = Path(__file__).resolve().parents[3] / "playbooks" / "container_runtime.yml"
    result = run_playbook(playbook, limit=host.backend.get_hostname(),
                          extra_vars=["fleet_container_engine=podman"])
    assert result.returncode != 0
    assert "fleet_container_engine must be containerd or docker, got 'podman'" in result.text
    assert "changed=0" in result.text
