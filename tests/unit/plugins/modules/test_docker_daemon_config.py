"""docker_daemon_config: pure helpers by table, and the module against a stand-in dockerd (a small
Python program, not Docker) that speaks both validation styles: --validate (Docker 23+) and a
trial daemon answering /_ping on its unix socket (Docker 20.10)."""
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import hardening_module_runner
import pytest
from ansible_collections.fleetforge.fleet.plugins.modules import docker_daemon_config as mod

run_module = hardening_module_runner.run_module
ModuleFail = hardening_module_runner.ModuleFail

STANDIN_DOCKERD = r'''#!PYTHON
"""Stand-in for dockerd (not Docker): version, --validate, or a trial daemon answering /_ping."""
import json, os, signal, socket, sys
args = sys.argv[1:]
with open(os.environ["STANDIN_RECORD"], "a") as record:
    record.write(json.dumps(args) + "\n")
if args == ["--version"]:
    print("Docker version %s, build 0000000" % os.environ["STANDIN_VERSION"])
    sys.exit(0)
path = args[args.index("--config-file") + 1]
config = json.load(open(path))
if "no-such-option" in config:
    sys.stderr.write("unable to configure the Docker daemon with file %s: the following directives "
                     "don't match any configuration option: no-such-option\n" % path)
    sys.exit(1)
if "--validate" in args:
    print("configuration OK")
    sys.exit(0)
with open(os.environ["STANDIN_RECORD"] + ".trial.json", "w") as seen:
    json.dump(config, seen)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(config["pidfile"], "w") as pidfile:
    pidfile.write("%d\n" % os.getpid())
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(config["hosts"][0][len("unix://"):])
server.listen(1)
while True:
    conn, _ = server.accept()
    conn.recv(1024)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
    conn.close()
'''

WANTED = {"exec-opts": ["native.cgroupdriver=systemd"], "live-restore": True, "log-driver": "json-file",
          "data-root": "/var/lib/docker-fleet", "bip": "172.31.0.1/16"}


@pytest.mark.parametrize("text, version", [
    ("Docker version 20.10.24+dfsg1, build 297e128", ("20.10.24+dfsg1", (20, 10, 24))),
    ("Docker version 26.1.5+dfsg1, build a72d7cd", ("26.1.5+dfsg1", (26, 1, 5))),
    ("Docker version 28.3.2, build 578ccf6", ("28.3.2", (28, 3, 2))),
    ("dockerd: command not found", ("", ())),
    ("", ("", ())),
])
def test_parse_version(text, version):
    assert mod.parse_version(text) == version


@pytest.mark.parametrize("requested, version, method", [
    ("auto", (20, 10, 24), "trial"),
    ("auto", (23, 0, 0), "flag"),
    ("auto", (26, 1, 5), "flag"),
    ("trial", (26, 1, 5), "trial"),
    ("none", (20, 10, 24), "none"),
])
def test_choose_method(requested, version, method):
    assert mod.choose_method(requested, version) == method


def test_trial_config_keeps_the_settings_but_not_the_running_daemons_resources():
    trial = mod.trial_config(dict(WANTED, hosts=["fd://"], **{"metrics-addr": "0.0.0.0:9323"}), "/s")
    assert trial["exec-opts"] == WANTED["exec-opts"]
    assert trial["live-restore"] is True
    assert trial["hosts"] == ["unix:///s/docker.sock"]
    assert (trial["data-root"], trial["exec-root"]) == ("/s/data", "/s/exec")
    assert trial["pidfile"] == "/s/docker.pid"
    assert (trial["bridge"], trial["iptables"]) == ("none", False)
    assert trial["containerd-namespace"] != "moby"
    assert "bip" not in trial and "metrics-addr" not in trial


def test_render_is_stable_json():
    assert mod.render({"b": 1, "a": [2]}) == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'


def test_log_tail_keeps_the_reason_a_daemon_stopped():
    log = ('time="t" level=info msg="[core] parsed scheme"\n'
           'time="t" level=error msg="Failed to GetDriver graph" driver=nope\n'
           'time="t" level=info msg="stopping event stream"\n'
           "failed to start daemon: error initializing graphdriver: driver not supported\n")
    assert mod.log_tail(log).splitlines() == [
        'time="t" level=error msg="Failed to GetDriver graph" driver=nope',
        "failed to start daemon: error initializing graphdriver: driver not supported"]
    assert mod.log_tail('time="t" level=info msg="a"\ntime="t" level=info msg="b"', lines=1) == (
        'time="t" level=info msg="b"')


def test_mounts_under_lists_deepest_first():
    info = ("36 25 0:31 / /s rw - tmpfs t rw\n37 36 0:32 / /s/exec/netns rw - nsfs n rw\n"
            "38 25 0:33 / /srv rw - ext4 e rw\n")
    assert mod.mounts_under("/s", info) == ["/s/exec/netns", "/s"]


@pytest.fixture
def dockerd(tmp_path, monkeypatch):
    """Path of the stand-in dockerd; set its version with monkeypatch.setenv('STANDIN_VERSION', ...)."""
    path = tmp_path / "bin" / "dockerd"
    path.parent.mkdir()
    path.write_text(STANDIN_DOCKERD.replace("PYTHON", sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("STANDIN_RECORD", str(tmp_path / "calls"))
    monkeypatch.setenv("STANDIN_VERSION", "26.1.5")
    return path


@pytest.fixture
def trials(monkeypatch):
    """Parent of the trial daemons' scratch directories: short, for the unix socket path limit."""
    parent = tempfile.mkdtemp(prefix="ff-trials-")
    monkeypatch.setattr(mod, "TRIAL_PARENT", parent)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def calls(tmp_path):
    record = tmp_path / "calls"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


@pytest.fixture
def args(tmp_path, dockerd):
    return {"config": WANTED, "path": str(tmp_path / "etc" / "daemon.json"), "dockerd": str(dockerd)}


def test_writes_after_validate_then_is_idempotent(run_module, args, tmp_path):
    first = run_module(mod, args)
    assert first["changed"] and first["validation"] == "flag"
    assert first["dockerd_version"] == "26.1.5"
    assert json.loads(Path(args["path"]).read_text()) == WANTED
    assert calls(tmp_path)[1][:2] == ["--validate", "--config-file"]
    second = run_module(mod, args)
    assert not second["changed"] and second["validation"] == "unchanged"
    assert len(calls(tmp_path)) == 2


def test_refused_config_keeps_the_old_file(run_module, args, tmp_path):
    run_module(mod, args)
    before = Path(args["path"]).read_text()
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, dict(args, config=dict(WANTED, **{"no-such-option": True})))
    msg = failed.value.result["msg"]
    assert "refused the new configuration (flag check)" in msg
    assert "don't match any configuration option: no-such-option" in msg
    assert Path(args["path"]).read_text() == before
    assert os.listdir(os.path.dirname(args["path"])) == ["daemon.json"]


def test_check_mode_neither_validates_nor_writes(run_module, args, tmp_path):
    result = run_module(mod, args, check=True)
    assert result["changed"] and result["validation"] == "check_mode"
    assert '"log-driver": "json-file"' in result["diff"]["after"]
    assert not os.path.exists(args["path"])
    assert calls(tmp_path) == []


def test_docker_20_gets_a_trial_daemon_isolated_from_the_running_one(run_module, args, tmp_path, trials,
                                                                     monkeypatch):
    monkeypatch.setenv("STANDIN_VERSION", "20.10.24+dfsg1")
    result = run_module(mod, dict(args, trial_timeout=20))
    assert result["changed"] and result["validation"] == "trial"
    seen = json.loads((tmp_path / "calls.trial.json").read_text())
    assert seen["hosts"][0].startswith("unix://" + trials)
    assert seen["data-root"].startswith(trials)
    assert seen["exec-opts"] == WANTED["exec-opts"]
    assert json.loads(Path(args["path"]).read_text()) == WANTED
    assert os.listdir(trials) == []


def test_trial_daemon_that_exits_refuses_with_its_log(run_module, args, trials, monkeypatch):
    monkeypatch.setenv("STANDIN_VERSION", "20.10.24+dfsg1")
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, dict(args, config={"no-such-option": True}, trial_timeout=20))
    msg = failed.value.result["msg"]
    assert "(trial check)" in msg and "the trial dockerd exited (rc 1)" in msg
    assert "no-such-option" in msg
    assert not os.path.exists(args["path"])
    assert os.listdir(trials) == []


def test_trial_daemon_that_never_answers_is_stopped_by_the_timeout(run_module, args, trials, monkeypatch,
                                                                   tmp_path):
    monkeypatch.setenv("STANDIN_VERSION", "20.10.24+dfsg1")
    monkeypatch.setattr(mod, "ping", lambda sock_path: False)
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, dict(args, trial_timeout=2))
    assert "did not answer on its socket within 2s" in failed.value.result["msg"]
    assert not os.path.exists(args["path"])
    assert os.listdir(trials) == []


def test_unknown_version_fails_before_writing(run_module, args, monkeypatch):
    monkeypatch.setenv("STANDIN_VERSION", "unknown")
    with pytest.raises(ModuleFail) as failed:
        run_module(mod, args)
    assert "cannot tell the Docker version" in failed.value.result["msg"]
    assert not os.path.exists(args["path"])
