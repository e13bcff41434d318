"""containerd installed from (stand-in) static releases through the air-gapped lab's mirror."""
import sys
from pathlib import Path

# the containerd scenario's image builder (stand-alone, standard library only)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "containerd" / "tests"))
from oci_image import busybox_run


def test_binaries_come_from_the_release_files(host):
    assert host.file("/usr/local/bin/containerd").mode == 0o755
    assert host.file("/usr/local/sbin/runc").mode == 0o755
    assert host.file("/opt/cni/bin/bridge").exists
    assert not host.package("containerd").is_installed


def test_no_direct_route_out(host):
    # the mirror is the only way out: the downloads above came through it
    assert host.run("timeout 5 bash -c 'echo > /dev/tcp/deb.debian.org/80'").rc != 0


def test_service_runs_our_unit(host):
    unit = host.file("/etc/systemd/system/containerd.service")
    assert "ExecStart=/usr/local/bin/containerd" in unit.content_string
    assert host.service("containerd").is_running
    assert host.service("containerd").is_enabled


def test_cni_dir_in_effective_config(host):
    with host.sudo():
        dump = host.run("/usr/local/bin/containerd config dump").stdout
    assert 'bin_dir = "/opt/cni/bin"' in dump


def test_runs_a_container(host):
    run = busybox_run(host, snapshotter="native")
    assert run.rc == 0, run.stderr
    assert run.stdout.strip() == "hello from Linux"
