"""sysctl_profile: pure helpers by table, the module against a stand-in /proc/sys in tmp_path."""
import os
from pathlib import Path

import hardening_module_runner
import pytest
from ansible_collections.fleetforge.fleet.plugins.modules import sysctl_profile as mod

run_module = hardening_module_runner.run_module
ModuleFail = hardening_module_runner.ModuleFail


@pytest.mark.parametrize("key, namespaced", [
    ("net.ipv4.ip_forward", True),
    ("net.ipv6.conf.all.accept_ra", True),
    ("net.core.bpf_jit_harden", False),
    ("kernel.kptr_restrict", False),
    ("kernel.shmmax", True),
    ("vm.swappiness", False),
    ("fs.suid_dumpable", False),
    ("fs.protected_symlinks", False),
    ("fs.mqueue.msg_max", True),
    ("user.max_user_namespaces", True),
])
def test_is_namespaced(key, namespaced):
    assert mod.is_namespaced(key) is namespaced


@pytest.mark.parametrize("value, expected", [
    (1, "1"), (True, "1"), ("4096\t87380  6291456", "4096 87380 6291456"), (" 2 ", "2"),
])
def test_normalise(value, expected):
    assert mod.normalise(value) == expected


@pytest.mark.parametrize("key, path", [
    ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
    ("net/ipv4/conf/eth0.10/rp_filter", "/proc/sys/net/ipv4/conf/eth0.10/rp_filter"),
])
def test_proc_path(key, path):
    assert mod.proc_path(key) == path


def test_render_leaves_out_non_namespaced_keys_in_a_container():
    settings = {"net.ipv4.tcp_syncookies": 1, "kernel.kptr_restrict": 2}
    assert "kernel.kptr_restrict" in mod.render(settings, in_container=False)
    text = mod.render(settings, in_container=True)
    assert "kernel.kptr_restrict" not in text
    assert "net.ipv4.tcp_syncookies = 1\n" in text


def test_parse_file_reads_what_render_writes():
    settings = {"net.ipv4.tcp_syncookies": 1, "kernel.randomize_va_space": "2"}
    assert mod.parse_file(mod.render(settings, False)) == {
        "net.ipv4.tcp_syncookies": "1", "kernel.randomize_va_space": "2"}


# plan(settings, in_container, persisted_before, runtime, apply) -> status, write
@pytest.mark.parametrize("in_container, persisted, runtime, status, write", [
    (False, {"k.x": "1"}, ("1", True, ""), "compliant", False),
    (False, {}, ("1", True, ""), "changed", False),
    (False, {"k.x": "1"}, ("0", True, ""), "changed", True),
    (False, {"k.x": "1"}, ("0", False, "read-only"), "not_applicable", False),
    (True, {}, ("0", True, ""), "not_applicable", False),
])
def test_plan(in_container, persisted, runtime, status, write):
    item = mod.plan({"k.x": 1}, in_container, persisted, {"k.x": runtime}, True)["k.x"]
    assert (item["status"], item["write"]) == (status, write)


@pytest.fixture
def proc(tmp_path, monkeypatch):
    """A stand-in for /proc/sys under tmp_path (the real one is the machine's kernel)."""
    root = tmp_path / "proc-sys"

    def fake_proc_path(key):
        return str(root / key.replace(".", "/"))
    monkeypatch.setattr(mod, "proc_path", fake_proc_path)

    def make(values):
        for key, value in values.items():
            path = root / key.replace(".", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{value}\n")
        return root
    return make


def read(root, key):
    return (root / key.replace(".", "/")).read_text().strip()


@pytest.fixture
def args(tmp_path):
    return {"path": str(tmp_path / "sysctl.d" / "60-fleetforge.conf"), "context": "host",
            "settings": {"net.ipv4.tcp_syncookies": 1, "kernel.kptr_restrict": 2}}


def test_applies_then_is_idempotent(run_module, proc, args):
    root = proc({"net.ipv4.tcp_syncookies": 0, "kernel.kptr_restrict": 0})
    first = run_module(mod, args)
    assert first["changed"]
    assert read(root, "kernel.kptr_restrict") == "2"
    assert "kernel.kptr_restrict = 2" in Path(args["path"]).read_text()
    assert first["parameters"]["kernel.kptr_restrict"]["status"] == "changed"
    second = run_module(mod, args)
    assert not second["changed"]
    assert {k: v["status"] for k, v in second["parameters"].items()} == {
        "net.ipv4.tcp_syncookies": "compliant", "kernel.kptr_restrict": "compliant"}


def test_check_mode_changes_nothing_but_reports_it(run_module, proc, args):
    root = proc({"net.ipv4.tcp_syncookies": 0, "kernel.kptr_restrict": 0})
    result = run_module(mod, args, check=True)
    assert result["changed"]
    assert read(root, "kernel.kptr_restrict") == "0"
    assert not os.path.exists(args["path"])
    assert "kernel.kptr_restrict = 2" in result["diff"][0]["after"]
    assert result["diff"][1]["after"] == "net.ipv4.tcp_syncookies = 1\nkernel.kptr_restrict = 2\n"


def test_container_never_writes_non_namespaced_keys(run_module, proc, args):
    root = proc({"net.ipv4.tcp_syncookies": 0, "kernel.kptr_restrict": 0})
    result = run_module(mod, dict(args, context="container"))
    assert read(root, "kernel.kptr_restrict") == "0"
    assert "kernel" not in Path(args["path"]).read_text()
    assert read(root, "net.ipv4.tcp_syncookies") == "1"
    key = result["parameters"]["kernel.kptr_restrict"]
    assert (key["status"], key["persisted"]) == ("not_applicable", False)
    assert {"key": "kernel.kptr_restrict", "reason": key["reason"]} in result["unsettable"]


def test_read_only_key_is_reported_not_failed(run_module, proc, args, monkeypatch):
    root = proc({"net.ipv4.tcp_syncookies": 0, "kernel.kptr_restrict": 2})
    # stand-in for a read-only /proc/sys (root ignores file modes, a read-only mount it does not)
    monkeypatch.setattr(mod.os, "access", lambda path, _mode: not path.endswith("tcp_syncookies"))
    result = run_module(mod, args)
    assert read(root, "net.ipv4.tcp_syncookies") == "0"
    key = result["parameters"]["net.ipv4.tcp_syncookies"]
    assert key["status"] == "not_applicable"
    assert "read-only on this host" in key["reason"]
    assert result["unsettable"] == [{"key": "net.ipv4.tcp_syncookies", "reason": key["reason"]}]


def test_missing_key_is_reported_not_failed(run_module, proc, args):
    proc({"kernel.kptr_restrict": 2})
    result = run_module(mod, args)
    assert result["unsettable"] == [{
        "key": "net.ipv4.tcp_syncookies",
        "reason": "this kernel has no net.ipv4.tcp_syncookies (module not loaded or not built)"}]
    assert "net.ipv4.tcp_syncookies = 1" in Path(args["path"]).read_text()


# at_least: a floor, never a value that lowers what is running (or what a boot would apply)
@pytest.mark.parametrize("running, file_value, status", [
    ("10", "512", "changed"),      # raised to the floor
    ("512", "512", "compliant"),   # at the floor already (after a first run)
    ("2048", "2048", "changed"),   # higher: kept, and the file follows so a boot keeps it too
])
def test_at_least_keeps_a_higher_running_value(run_module, proc, tmp_path, running, file_value, status):
    root = proc({"net.unix.max_dgram_qlen": running})
    args = {"path": str(tmp_path / "60-queue.conf"), "context": "host",
            "settings": {"net.unix.max_dgram_qlen": 512}, "at_least": ["net.unix.max_dgram_qlen"]}
    if status == "compliant":
        Path(args["path"]).write_text(mod.render({"net.unix.max_dgram_qlen": 512}, False))
    result = run_module(mod, args)
    key = result["parameters"]["net.unix.max_dgram_qlen"]
    assert (key["status"], key["wanted"], key["before"]) == (status, file_value, running)
    assert read(root, "net.unix.max_dgram_qlen") == file_value
    assert f"net.unix.max_dgram_qlen = {file_value}\n" in Path(args["path"]).read_text()
    assert not run_module(mod, args)["changed"]


def test_at_least_in_check_mode_reports_the_raise_and_writes_nothing(run_module, proc, tmp_path):
    root = proc({"net.unix.max_dgram_qlen": "10"})
    args = {"path": str(tmp_path / "60-queue.conf"), "context": "host",
            "settings": {"net.unix.max_dgram_qlen": 512}, "at_least": ["net.unix.max_dgram_qlen"]}
    result = run_module(mod, args, check=True)
    key = result["parameters"]["net.unix.max_dgram_qlen"]
    assert result["changed"] and (key["before"], key["after"]) == ("10", "512")
    assert read(root, "net.unix.max_dgram_qlen") == "10"
    assert not os.path.exists(args["path"])


@pytest.mark.parametrize("settings, at_least, message", [
    ({"net.unix.max_dgram_qlen": 512}, ["net.core.somaxconn"],
     "at_least names net.core.somaxconn, which is not in settings"),
    ({"net.ipv4.tcp_rmem": "4096 87380"}, ["net.ipv4.tcp_rmem"],
     "at_least: the value of net.ipv4.tcp_rmem must be a whole number, got '4096 87380'"),
])
def test_at_least_refuses_bad_input_before_writing(run_module, proc, tmp_path, settings, at_least, message):
    root = proc({"net.unix.max_dgram_qlen": "10", "net.ipv4.tcp_rmem": "1 2"})
    args = {"path": str(tmp_path / "60-queue.conf"), "context": "host",
            "settings": settings, "at_least": at_least}
    with pytest.raises(ModuleFail) as failure:
        run_module(mod, args)
    assert failure.value.result["msg"] == message
    assert read(root, "net.unix.max_dgram_qlen") == "10"
    assert not os.path.exists(args["path"])


def test_at_least_on_a_key_this_kernel_lacks_writes_the_floor_and_reports_it(run_module, proc, tmp_path):
    proc({"net.ipv4.tcp_syncookies": "1"})
    args = {"path": str(tmp_path / "60-queue.conf"), "context": "host",
            "settings": {"net.unix.max_dgram_qlen": 512}, "at_least": ["net.unix.max_dgram_qlen"]}
    result = run_module(mod, args)
    assert "net.unix.max_dgram_qlen = 512\n" in Path(args["path"]).read_text()
    assert [item["key"] for item in result["unsettable"]] == ["net.unix.max_dgram_qlen"]
