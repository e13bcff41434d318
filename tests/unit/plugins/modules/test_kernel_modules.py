"""kernel_modules: parsers and the plan by table; the module with files in tmp_path and a
stand-in for modprobe (loading a real module would change this machine's kernel)."""
import os
from pathlib import Path

import hardening_module_runner
import pytest
from ansible.module_utils import basic
from ansible_collections.fleetforge.fleet.plugins.modules import kernel_modules as mod

run_module = hardening_module_runner.run_module
ModuleFail = hardening_module_runner.ModuleFail


@pytest.mark.parametrize("text, blocked", [
    ("install cramfs /bin/false\nblacklist cramfs\n", {"cramfs"}),
    ("install cramfs /bin/false\n", set()),
    ("blacklist usb-storage\ninstall usb_storage /bin/true\n", {"usb_storage"}),
    ("# install udf /bin/false\nblacklist udf\n", set()),
    (None, set()),
])
def test_blocked_in(text, blocked):
    assert mod.blocked_in(text) == blocked


def test_listed_in_and_render_load_agree():
    assert mod.listed_in(mod.render_load(["overlay", "br_netfilter"])) == {"overlay", "br_netfilter"}


def test_loaded_names_include_builtins():
    proc = "overlay 151552 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\n"
    builtin = "kernel/fs/ext4/ext4.ko\nkernel/net/ipv4/tcp-cubic.ko\n"
    assert mod.loaded_names(proc, builtin) == {"overlay", "br_netfilter", "ext4", "tcp_cubic"}


# plan(blocklist, load, blocked_before, listed_before, loaded, in_container) -> (status, load_now)
@pytest.mark.parametrize("name, blocked, listed, loaded, container, status, load_now", [
    ("cramfs", {"cramfs"}, set(), set(), False, "compliant", False),
    ("cramfs", set(), set(), set(), False, "changed", False),
    ("cramfs", set(), set(), set(), True, "changed", False),
    ("overlay", set(), {"overlay"}, {"overlay"}, False, "compliant", False),
    ("overlay", set(), {"overlay"}, set(), False, "changed", True),
    ("overlay", set(), set(), {"overlay"}, False, "changed", False),
    ("overlay", set(), {"overlay"}, set(), True, "not_applicable", False),
])
def test_plan(name, blocked, listed, loaded, container, status, load_now):
    blocklist, load = ([name], []) if name == "cramfs" else ([], [name])
    item = mod.plan(blocklist, load, blocked, listed, loaded, container)[name]
    assert (item["status"], item["load_now"]) == (status, load_now)


def test_plan_reports_a_blocked_module_that_is_loaded():
    item = mod.plan(["sctp"], [], {"sctp"}, set(), {"sctp"}, False)["sctp"]
    assert item["loaded"] is True
    assert "loaded now" in item["reason"]


@pytest.fixture
def modprobe(monkeypatch):
    """Stand-in for modprobe: records calls and marks the module loaded."""
    loaded, calls = set(), []
    monkeypatch.setattr(mod, "read_loaded", lambda: set(loaded))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/sbin/" + name)

    def run_command(self, argv, **_kwargs):
        calls.append(argv)
        loaded.add(argv[-1])
        return 0, "", ""
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    return calls


@pytest.fixture
def args(tmp_path):
    return {"blocklist": ["cramfs", "usb-storage"], "load": ["overlay"], "context": "host",
            "blocklist_path": str(tmp_path / "modprobe.d" / "60-fleetforge.conf"),
            "load_path": str(tmp_path / "modules-load.d" / "60-fleetforge.conf")}


def test_blocks_loads_then_is_idempotent(run_module, modprobe, args):
    first = run_module(mod, args)
    assert first["changed"]
    text = Path(args["blocklist_path"]).read_text()
    assert "install usb-storage /bin/false\nblacklist usb-storage\n" in text
    assert Path(args["load_path"]).read_text().endswith("overlay\n")
    assert modprobe == [["/sbin/modprobe", "overlay"]]
    second = run_module(mod, args)
    assert not second["changed"]
    assert {n: m["status"] for n, m in second["modules"].items()} == {
        "cramfs": "compliant", "usb_storage": "compliant", "overlay": "compliant"}
    assert len(modprobe) == 1


def test_check_mode_does_nothing(run_module, modprobe, args):
    result = run_module(mod, args, check=True)
    assert result["changed"]
    assert modprobe == []
    assert not os.path.exists(args["blocklist_path"])
    assert not os.path.exists(args["load_path"])
    assert "install cramfs /bin/false" in result["diff"][0]["after"]
    assert result["diff"][-1]["after"] == "overlay\n"


def test_container_writes_files_but_does_not_load(run_module, modprobe, args):
    result = run_module(mod, dict(args, context="container"))
    assert modprobe == []
    assert result["modules"]["overlay"]["status"] == "not_applicable"
    assert result["modules"]["overlay"]["loaded"] is None
    assert os.path.exists(args["blocklist_path"])


def test_module_both_blocked_and_loaded_fails_before_writing(run_module, modprobe, args):
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, dict(args, load=["cramfs"]))
    assert "both blocked and loaded: cramfs" in failed.value.result["msg"]
    assert not os.path.exists(args["blocklist_path"])


def test_failed_modprobe_fails_with_its_message(run_module, args, monkeypatch):
    monkeypatch.setattr(mod, "read_loaded", set)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/sbin/" + name)
    monkeypatch.setattr(basic.AnsibleModule, "run_command",
                        lambda self, argv, **kw: (1, "", "modprobe: FATAL: Module overlay not found"))
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, args)
    assert "modprobe overlay failed (rc 1): modprobe: FATAL" in failed.value.result["msg"]
