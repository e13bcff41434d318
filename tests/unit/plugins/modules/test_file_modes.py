"""file_modes: mode arithmetic by table; the module on files in tmp_path."""
import grp
import os
import pwd
import stat

import hardening_module_runner
import pytest
from ansible_collections.fleetforge.fleet.plugins.modules import file_modes as mod

run_module = hardening_module_runner.run_module
ModuleFail = hardening_module_runner.ModuleFail
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.mark.parametrize("text, mode", [
    ("0640", 0o640), ("640", 0o640), ("1777", 0o1777), ("0o640", None), ("u+x", None), ("", None),
    ("99", None),
])
def test_parse_mode(text, mode):
    assert mod.parse_mode(text) == mode


@pytest.mark.parametrize("current, mode, max_mode, wanted", [
    (0o644, 0o600, None, 0o600),
    (0o644, None, 0o640, 0o640),
    (0o600, None, 0o640, 0o600),   # already stricter: stays
    (0o4755, None, 0o755, 0o755),  # setuid removed by a ceiling
    (0o644, None, None, 0o644),
])
def test_wanted_mode(current, mode, max_mode, wanted):
    assert mod.wanted_mode(current, mode, max_mode) == wanted


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "shadow").write_text("x")
    (tmp_path / "shadow").chmod(0o644)
    (tmp_path / "cron.d").mkdir()
    (tmp_path / "cron.d").chmod(0o755)
    (tmp_path / "link").symlink_to(tmp_path / "shadow")
    return tmp_path


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def args(tree):
    return {"paths": [
        {"path": str(tree / "shadow"), "max_mode": "0640", "owner": ME, "group": MY_GROUP},
        {"path": str(tree / "cron.d"), "mode": "0700"},
        {"path": str(tree / "absent"), "mode": "0600", "missing_ok": True},
        {"path": str(tree / "link"), "mode": "0600"},
    ]}


def test_sets_modes_then_is_idempotent(run_module, tree, args):
    first = run_module(mod, args)
    assert first["changed"]
    assert mode_of(tree / "shadow") == 0o640
    assert mode_of(tree / "cron.d") == 0o700
    statuses = {os.path.basename(p): r["status"] for p, r in first["paths"].items()}
    assert statuses == {"shadow": "changed", "cron.d": "changed", "absent": "not_applicable",
                        "link": "not_applicable"}
    second = run_module(mod, args)
    assert not second["changed"]
    assert second["paths"][str(tree / "shadow")]["status"] == "compliant"


def test_check_mode_changes_nothing(run_module, tree, args):
    result = run_module(mod, args, check=True)
    assert result["changed"]
    assert mode_of(tree / "shadow") == 0o644
    assert mode_of(tree / "cron.d") == 0o755
    assert f"{tree / 'cron.d'} 0700 " in result["diff"]["after"]


@pytest.mark.parametrize("item, message", [
    ({"mode": "0600", "max_mode": "0600"}, "give mode or max_mode, not both"),
    ({"mode": "rw-------"}, "is not an octal mode"),
    ({"owner": "no-such-user-fleetforge"}, "unknown owner no-such-user-fleetforge"),
    ({"group": "no-such-group-fleetforge"}, "unknown group no-such-group-fleetforge"),
])
def test_bad_input_fails_before_any_change(run_module, tree, args, item, message):
    args["paths"].append(dict(item, path=str(tree / "shadow")))
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, args)
    assert message in failed.value.result["msg"]
    assert mode_of(tree / "cron.d") == 0o755


def test_missing_path_fails_unless_missing_ok(run_module, tree, args):
    args["paths"].append({"path": str(tree / "nope"), "mode": "0600"})
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, args)
    assert f"{tree / 'nope'}: does not exist" in failed.value.result["msg"]
    assert mode_of(tree / "cron.d") == 0o755
