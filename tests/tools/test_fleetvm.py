"""The pure parts of the VM lab tool: recipe tags, kernel and qemu command lines, process
ownership, and that a failed start or a teardown leaves nothing behind (qemu stood in for)."""
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
SPEC = importlib.util.spec_from_file_location("fleetvm", TOOLS / "fleetvm.py")
fleetvm = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(fleetvm)
fleetlab = fleetvm.fleetlab  # the very module fleetvm uses

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyBlobForTests0123456789abcdefghij fleetlab-t"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """fleetlab's state and inventory directories moved under tmp_path."""
    monkeypatch.setattr(fleetlab, "STATE_DIR", tmp_path / ".lab")
    monkeypatch.setattr(fleetlab, "INVENTORY_DIR", tmp_path / "inventories")
    return tmp_path


def test_recipe_hash_is_stable_and_follows_the_recipe(monkeypatch):
    first = fleetvm.recipe_hash("debian12")
    assert first == fleetvm.recipe_hash("debian12")
    assert fleetvm.image_dir("debian12").name == f"debian12-{first}"
    monkeypatch.setattr(fleetvm, "VM_PACKAGES", fleetvm.VM_PACKAGES + ["auditd"])
    assert fleetvm.recipe_hash("debian12") != first


def test_baked_packages_make_their_own_image_whatever_their_order():
    plain = fleetvm.image_dir("debian12")
    baked = fleetvm.image_dir("debian12", ["nftables", "auditd"])
    assert baked != plain
    assert baked == fleetvm.image_dir("debian12", fleetvm.parse_packages(" auditd,nftables,auditd "))


@pytest.mark.parametrize("text", ["auditd;rm -rf /", "Auditd", "-y", "auditd nftables"])
def test_packages_must_be_debian_package_names(text):
    with pytest.raises(fleetlab.LabError, match="--packages takes Debian package names"):
        fleetvm.parse_packages(text)


@pytest.mark.parametrize("pubkey, expected", [
    (PUBKEY, "ssh-ed25519:" + PUBKEY.split()[1]),
    ("ssh-rsa AAAAB3Nza", "ssh-rsa:AAAAB3Nza"),
    ("ecdsa-sha2-nistp256 AAAAE2 a comment with spaces", "ecdsa-sha2-nistp256:AAAAE2"),
])
def test_key_param_is_one_word(pubkey, expected):
    assert fleetvm.key_param(pubkey) == expected


@pytest.mark.parametrize("pubkey", ["", "AAAAC3Nza", "-----BEGIN OPENSSH PRIVATE KEY-----"])
def test_key_param_refuses_what_is_not_a_public_key(pubkey):
    with pytest.raises(fleetlab.LabError, match="not an OpenSSH public key"):
        fleetvm.key_param(pubkey)


def test_provision_script_reads_back_the_key_and_hostname(tmp_path):
    """The first-boot script's own parsing, run on a stand-in /proc/cmdline."""
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(fleetvm.kernel_cmdline("vm1", PUBKEY) + " quiet\n")
    head = fleetvm.PROVISION_SCRIPT.split("[ -n \"$key\" ]")[0].replace("/proc/cmdline",
                                                                          str(cmdline))
    out = subprocess.run(["sh", "-c", head + 'printf "%s|%s" "$key" "$name"'],
                         capture_output=True, text=True, check=True).stdout
    assert out == " ".join(PUBKEY.split()[:2]) + "|vm1"


def test_kernel_cmdline_boots_the_overlay_with_classic_names():
    words = fleetvm.kernel_cmdline("vm1", PUBKEY).split()
    assert {"root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0",
            "systemd.hostname=vm1"} <= set(words)
    assert len(" ".join(words)) < 2048  # the x86 kernel command line limit


def test_qemu_argv_forwards_ssh_on_loopback_only(tmp_path):
    host = fleetlab.Host(name="vm1", distro="debian12", port=20001, container="lab-vm1")
    paths = fleetvm.vm_paths("lab", "vm1")
    argv = fleetvm.qemu_argv(host, tmp_path, paths, "root=/dev/vda", 2048, 2)
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "user,id=n0,hostfwd=tcp:127.0.0.1:20001-:22" in argv
    assert f"file={paths['disk']},if=virtio,format=qcow2,cache=unsafe" in argv
    assert argv[argv.index("-accel") + 1].startswith("tcg")
    assert argv[argv.index("-pidfile") + 1] == str(paths["pid"])
    assert "-daemonize" in argv and "-m 2048" in joined and "-smp 2" in joined
    assert argv[argv.index("-kernel") + 1] == str(tmp_path / "vmlinuz")


@pytest.mark.parametrize("cmdline, owned", [
    (b"qemu-system-x86_64\0-drive\0file=/lab/x/vm1.qcow2,if=virtio,format=qcow2\0", True),
    (b"/usr/bin/qemu-system-x86_64\0-drive\0file=/lab/x/vm1.qcow2,if=virtio\0", True),
    (b"qemu-system-x86_64\0-drive\0file=/lab/x/vm10.qcow2,if=virtio\0", False),
    (b"/usr/bin/python3\0file=/lab/x/vm1.qcow2,\0", False),
    (b"", False),
])
def test_is_vm_process_only_claims_our_qemu(cmdline, owned):
    assert fleetvm.is_vm_process(cmdline, Path("/lab/x/vm1.qcow2")) is owned


def test_teardown_removes_files_and_spares_a_reused_pid(lab):
    base = fleetlab.lab_dir("t")
    base.mkdir(parents=True)
    for name in ("vm1.qcow2", "vm1.console.log", "state.json", "id_ed25519"):
        (base / name).write_text("x")
    (base / "vm1.pid").write_text(str(os.getpid()))  # a pid that is not our qemu
    fleetlab.INVENTORY_DIR.mkdir()
    (fleetlab.INVENTORY_DIR / "t.yml").write_text("{}")
    fleetvm.teardown("t")
    assert sorted(p.name for p in base.iterdir()) == ["id_ed25519"]
    assert not (fleetlab.INVENTORY_DIR / "t.yml").exists()


def test_failed_start_leaves_nothing_behind(lab, monkeypatch, capsys):
    """Stand-ins for qemu: the first VM 'starts' (writes its files), the second fails."""
    monkeypatch.setattr(fleetvm, "cmd_doctor", lambda args: None)
    monkeypatch.setattr(fleetvm, "build_image", lambda distro, packages: lab / "image")

    def fake_key(name):
        key = fleetlab.lab_dir(name) / "id_ed25519"
        key.parent.mkdir(parents=True, exist_ok=True)
        key.with_suffix(".pub").write_text(PUBKEY)
        return key

    def fake_start(name, host, image, pubkey, memory, cpus):
        if host.name == "b":
            raise fleetlab.LabError("qemu-system-x86_64 failed (stand-in)")
        paths = fleetvm.vm_paths(name, host.name)
        paths["disk"].write_text("overlay")
        paths["pid"].write_text(str(os.getpid()))

    monkeypatch.setattr(fleetlab, "ensure_key", fake_key)
    monkeypatch.setattr(fleetvm, "start_vm", fake_start)
    assert fleetvm.main(["up", "--name", "t", "--host", "a:debian12", "--host", "b:debian12"]) == 2
    assert "qemu-system-x86_64 failed" in capsys.readouterr().err
    left = sorted(p.name for p in fleetlab.lab_dir("t").iterdir())
    assert left == ["id_ed25519.pub"]
    assert not fleetlab.INVENTORY_DIR.exists() or not any(fleetlab.INVENTORY_DIR.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["up", "--name", "t", "--host", "a:debian13"], "no VM image for debian13"),
    (["up", "--name", "t", "--host", "a:centos9"], "unknown distro centos9"),
    (["up", "--name", "t", "--memory", "128"], "--memory must be at least 512"),
    (["up", "--name", "t", "--packages", "auditd,$(reboot)"], "--packages takes Debian package"),
    (["up", "--name", "bad name"], "must be letters, digits"),
    (["reboot", "--name", "absent"], "VM lab 'absent' does not exist"),
    (["status", "--name", "absent"], "VM lab 'absent' does not exist"),
])
def test_bad_requests_fail_before_anything_starts(lab, monkeypatch, capsys, argv, message):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing may start on a bad request")

    monkeypatch.setattr(fleetvm, "build_image", refuse)
    monkeypatch.setattr(fleetvm, "start_vm", refuse)
    assert fleetvm.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not fleetlab.STATE_DIR.exists() or not any(fleetlab.STATE_DIR.rglob("*.qcow2"))


def test_a_container_lab_is_not_taken_for_a_vm_lab(lab, capsys):
    base = fleetlab.lab_dir("c")
    base.mkdir(parents=True)
    (base / "state.json").write_text('{"name": "c", "hosts": []}')
    assert fleetvm.main(["down", "--name", "c"]) == 2
    assert "container lab" in capsys.readouterr().err
    assert (base / "state.json").exists()
