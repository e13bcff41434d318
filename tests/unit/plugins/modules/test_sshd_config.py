"""sshd_config: the pure decisions (render, parse, guard) and the module's read/compare/apply.

The module tests run against a stand-in for `sshd` (FakeSshd below): it reads the staged
configuration files the module writes and answers `-t` and `-T` first-match-wins, the way
sshd does for the directives used here. It is a test double, not sshd; the molecule scenarios
ssh_hardening and ssh_lockout run the real one.
"""
import contextlib
import glob
import json
import os

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.fleetforge.fleet.plugins.module_utils import sshd
from ansible_collections.fleetforge.fleet.plugins.modules import sshd_config

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    @contextlib.contextmanager
    def patch_module_args(args):
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = None


# ------------------------------------------------------------------ pure functions
@pytest.mark.parametrize("key, value, words", [
    ("PermitRootLogin", False, ["no"]),
    ("PubkeyAuthentication", True, ["yes"]),
    ("MaxAuthTries", 4, ["4"]),
    ("Ciphers", ["aes256-gcm@openssh.com", "aes128-ctr"], ["aes256-gcm@openssh.com,aes128-ctr"]),
    ("kexalgorithms", ["a", "b"], ["a,b"]),
    ("HostKey", ["/k1", "/k2"], ["/k1", "/k2"]),
    ("AllowUsers", ["deploy", "fleetadmin"], ["deploy fleetadmin"]),
    ("Banner", "/etc/ssh/sshd-banner", ["/etc/ssh/sshd-banner"]),
])
def test_render_value(key, value, words):
    assert sshd.render_value(key, value) == words


def test_render_dropin_is_sorted_and_skips_empty_values():
    text = sshd.render_dropin({"PermitRootLogin": "no", "AllowUsers": [], "Ciphers": ["c1", "c2"],
                               "banner": None, "HostKey": ["/a", "/b"]}, "Managed\nsecond line")
    assert text == ("# Managed\n# second line\nCiphers c1,c2\nHostKey /a\nHostKey /b\nPermitRootLogin no\n")


INCLUDE = "Include /etc/ssh/sshd_config.d/*.conf"


@pytest.mark.parametrize("text, expected, changed", [
    # Debian's default: already first
    ("# comment\n\n" + INCLUDE + "\nPort 22\n", "# comment\n\n" + INCLUDE + "\nPort 22\n", False),
    # missing: inserted before the first directive, after the leading comments
    ("# comment\nPort 22\nUsePAM yes\n", "# comment\n" + INCLUDE + "\nPort 22\nUsePAM yes\n", True),
    # present but after another directive: moved to the top
    ("Port 22\n" + INCLUDE + "\nUsePAM yes\n", INCLUDE + "\nPort 22\nUsePAM yes\n", True),
    # case and spacing do not matter
    ("include   /etc/ssh/sshd_config.d/*.conf\nPort 22\n",
     "include   /etc/ssh/sshd_config.d/*.conf\nPort 22\n", False),
    # one inside a Match block stays where it is
    ("Port 22\nMatch User x\n  " + INCLUDE + "\n",
     INCLUDE + "\nPort 22\nMatch User x\n  " + INCLUDE + "\n", True),
    # an empty file gets the line
    ("", INCLUDE + "\n", True),
])
def test_ensure_include(text, expected, changed):
    assert sshd.ensure_include(text, INCLUDE) == (expected, changed)


def test_redirect_include_points_at_the_staged_directory():
    text = "# x\n" + INCLUDE + "\nInclude /other/*.conf\n"
    out = sshd.redirect_include(text, "/etc/ssh/sshd_config.d/*.conf", "/tmp/s/*.conf")
    assert out == "# x\nInclude /tmp/s/*.conf\nInclude /other/*.conf\n"


def test_parse_effective_keeps_repeated_directives_as_lists():
    parsed = sshd.parse_effective("port 22\nallowusers a\nallowusers b\nciphers x,y\n"
                                  "listenaddress 0.0.0.0:22\nauthenticationmethods any\n")
    assert parsed == {"port": ["22"], "allowusers": ["a", "b"], "ciphers": "x,y",
                      "listenaddress": ["0.0.0.0:22"], "authenticationmethods": ["any"]}


@pytest.mark.parametrize("pattern, user, host, addr, hit", [
    ("fleetadmin", "fleetadmin", "h", "10.0.0.1", True),
    ("fleet*", "fleetadmin", "h", "10.0.0.1", True),
    ("deploy", "fleetadmin", "h", "10.0.0.1", False),
    ("fleetadmin@10.0.0.*", "fleetadmin", "10.0.0.1", "10.0.0.1", True),
    ("fleetadmin@10.0.0.0/24", "fleetadmin", "x", "10.0.0.7", True),
    ("fleetadmin@192.168.0.0/16", "fleetadmin", "x", "10.0.0.7", False),
    ("fleetadmin@bastion", "fleetadmin", "laptop", "10.0.0.7", False),
])
def test_user_matches(pattern, user, host, addr, hit):
    assert sshd.user_matches(pattern, user, host, addr)[0] is hit


GROUPS = ["fleetadmin", "sudo"]


@pytest.mark.parametrize("effective, refused_by", [
    ({}, []),
    ({"allowusers": ["deploy", "fleetadmin"]}, []),
    ({"allowusers": ["someoneelse"]}, ["AllowUsers someoneelse does not include fleetadmin"]),
    ({"allowusers": ["fleetadmin@192.168.0.0/16"]}, ["AllowUsers"]),
    ({"denyusers": ["fleet*"]}, ["DenyUsers fleet* matches fleetadmin"]),
    ({"allowgroups": ["sudo"]}, []),
    ({"allowgroups": ["wheel"]}, ["AllowGroups wheel includes no group of fleetadmin (fleetadmin,sudo)"]),
    ({"denygroups": ["sudo"]}, ["DenyGroups sudo matches"]),
    ({"allowusers": ["x"], "allowgroups": ["y"]}, ["AllowUsers", "AllowGroups"]),
])
def test_access_refusals(effective, refused_by):
    refusals = sshd.access_refusals(effective, "fleetadmin", GROUPS, "10.0.0.1", "10.0.0.1")
    assert len(refusals) == len(refused_by)
    for reason, prefix in zip(refusals, refused_by):
        assert reason.startswith(prefix)


@pytest.mark.parametrize("effective, user, refused_by", [
    ({"pubkeyauthentication": "yes", "authenticationmethods": ["any"]}, "fleetadmin", []),
    ({"authenticationmethods": ["publickey"]}, "fleetadmin", []),
    ({"authenticationmethods": ["password publickey"]}, "fleetadmin", []),
    ({"authenticationmethods": ["password"]}, "fleetadmin", ["AuthenticationMethods password"]),
    ({"authenticationmethods": ["publickey,password"]}, "fleetadmin", ["AuthenticationMethods"]),
    ({"authenticationmethods": ["keyboard-interactive:pam"]}, "fleetadmin", ["AuthenticationMethods"]),
    ({"pubkeyauthentication": "no"}, "fleetadmin", ["PubkeyAuthentication is no"]),
    ({"permitrootlogin": "no"}, "fleetadmin", []),
    ({"permitrootlogin": "no"}, "root", ["PermitRootLogin is no"]),
    ({"permitrootlogin": "prohibit-password"}, "root", []),
])
def test_auth_refusals(effective, user, refused_by):
    refusals = sshd.auth_refusals(effective, user)
    assert [r.split(" ")[0] for r in refusals] == [p.split(" ")[0] for p in refused_by]
    for reason, prefix in zip(refusals, refused_by):
        assert reason.startswith(prefix)


@pytest.mark.parametrize("effective, found, refused", [
    ({"authorizedkeysfile": ".ssh/authorized_keys"}, {"/h/.ssh/authorized_keys": ["ssh-ed25519"]}, False),
    ({"authorizedkeysfile": ".ssh/authorized_keys"}, {"/h/.ssh/authorized_keys": []}, True),
    ({"authorizedkeysfile": "none", "authorizedkeyscommand": "/usr/bin/keys %u"}, {}, False),
    ({"pubkeyacceptedalgorithms": "rsa-sha2-512"}, {"/k": ["ssh-rsa"]}, False),
    ({"pubkeyacceptedalgorithms": "rsa-sha2-512"}, {"/k": ["ssh-ed25519"]}, True),
    ({"pubkeyacceptedalgorithms": "ssh-ed25519,rsa-sha2-256"},
     {"/k": ["ssh-ed25519-cert-v01@openssh.com"]}, False),
])
def test_key_refusals(effective, found, refused):
    assert bool(sshd.key_refusals(effective, found)) is refused


@pytest.mark.parametrize("listen, lport, laddr, refused", [
    (["0.0.0.0:22", "[::]:22"], "22", "10.0.0.2", False),
    (["0.0.0.0:2222", "[::]:2222"], "22", "10.0.0.2", True),
    (["10.0.0.2:22"], "22", "10.0.0.2", False),
    (["127.0.0.1:22"], "22", "10.0.0.2", True),
    (["0.0.0.0:2222"], "", "", False),  # unknown arrival port: nothing to check
])
def test_port_refusals(listen, lport, laddr, refused):
    assert bool(sshd.port_refusals({"listenaddress": listen}, lport, laddr)) is refused


def test_expand_key_files():
    assert sshd.expand_key_files(".ssh/authorized_keys %h/.ssh/k2 /etc/keys/%u none ~/.ssh/k%%",
                                 "fleetadmin", "/home/fleetadmin") == [
        "/home/fleetadmin/.ssh/authorized_keys", "/home/fleetadmin/.ssh/k2", "/etc/keys/fleetadmin",
        "/home/fleetadmin/.ssh/k%"]


def test_key_types_reads_options_comments_and_blank_lines():
    text = ('# comment\n\nssh-ed25519 AAAA a@b\nfrom="10.0.0.0/8",no-pty ssh-rsa AAAA c\n'
            'restrict,command="x" ecdsa-sha2-nistp256 AAAA\n')
    assert sshd.key_types(text) == ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]


def test_not_effective_and_changed_keys():
    settings = {"PermitRootLogin": "no", "Ciphers": ["a", "b"], "HostKey": ["/k"], "AllowUsers": ["x", "y"],
                "DenyUsers": []}
    effective = {"permitrootlogin": "yes", "ciphers": "a,b", "hostkey": ["/k", "/other"],
                 "allowusers": ["x", "y"]}
    assert sshd.not_effective(settings, effective) == ["PermitRootLogin"]
    before = {"permitrootlogin": "yes", "ciphers": "a,b", "allowusers": ["x"]}
    assert sshd.changed_keys(settings, before, effective) == ["AllowUsers", "HostKey"]


@pytest.mark.parametrize("settings, bad", [
    ({"PermitRootLogin": "no"}, []),
    ({"Permit Root": "no", "x=y": 1}, ["Permit Root", "x=y"]),
    ({"Ciphers": "a", "ciphers": "b"}, ["ciphers"]),
])
def test_bad_directive_names(settings, bad):
    assert sshd.bad_directive_names(settings) == bad


def test_ssh_connection_from_environ():
    blob = "HOME=/root\0SSH_CONNECTION=10.89.0.1 40000 10.89.0.2 22\0TERM=x"
    assert sshd.ssh_connection_from_environ(blob) == ("10.89.0.1", "10.89.0.2", "22")
    assert sshd.ssh_connection_from_environ("HOME=/root\0") is None


PROC_NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0259590A:0016 0159590A:A3F2 01 00000000:00000000 02:0009C7F1 00000000     0
   2: 0259590A:0016 0159590A:A400 01 00000000:00000000 02:0009C7F1 00000000     0
   3: 0259590A:9C40 0159590A:0050 01 00000000:00000000 02:0009C7F1 00000000     0
"""
PROC_NET_TCP6 = """  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000259590A:0016 0000000000000000FFFF00000759590A:C350 01 0
   1: 00000000000000000000000001000000:0016 00000000000000000000000001000000:C351 01 0
"""


def test_established_peers_of_sshd_ports():
    assert sshd.established_peers(PROC_NET_TCP, ["22"]) == [("10.89.89.1", "10.89.89.2", "22")]
    assert sshd.established_peers(PROC_NET_TCP6, ["22"]) == [("10.89.89.7", "10.89.89.2", "22"),
                                                             ("::1", "::1", "22")]
    assert sshd.established_peers(PROC_NET_TCP, ["2222"]) == []


# ------------------------------------------------------------------ the module, on a stand-in sshd
DEFAULTS = {"pubkeyauthentication": "yes", "authenticationmethods": "any",
            "permitrootlogin": "without-password",
            "authorizedkeysfile": ".ssh/authorized_keys .ssh/authorized_keys2", "port": "22",
            "ciphers": "chacha20-poly1305@openssh.com,aes128-ctr", "passwordauthentication": "yes"}
WORD_LISTS = ("allowusers", "denyusers", "allowgroups", "denygroups")


class FakeSshd:
    """Test double for sshd -t / -T: first value wins, Include expanded in order, no Match support."""

    def __init__(self, broken=False):
        self.calls = []
        self.broken = broken

    def _lines(self, path):
        with open(path) as handle:
            for line in handle:
                key, rest = sshd._directive(line)
                if key == "include":
                    for pattern in rest.split():
                        for name in sorted(glob.glob(pattern)):
                            yield from self._lines(name)
                elif key:
                    yield key, rest

    def dump(self, path):
        seen = {}
        for key, rest in self._lines(path):
            if key in WORD_LISTS or key in sshd.MULTI_LINE:
                seen.setdefault(key, []).extend(rest.split() if key in WORD_LISTS else [rest])
            elif key not in seen:
                seen[key] = rest
        for key, value in DEFAULTS.items():
            seen.setdefault(key, value)
        ports = seen.pop("port")
        ports = ports if isinstance(ports, list) else [ports]
        out = [f"port {p}" for p in ports] + [f"listenaddress 0.0.0.0:{p}" for p in ports]
        for key, value in sorted(seen.items()):
            out.extend(f"{key} {v}" for v in (value if isinstance(value, list) else [value]))
        return "\n".join(out) + "\n"

    def __call__(self, args, environ_update=None, **kwargs):
        self.calls.append((list(args), dict(environ_update or {})))
        if "-t" in args:
            return (255, "", "line 3: Bad configuration option: Nonsense") if self.broken else (0, "", "")
        return 0, self.dump(args[args.index("-f") + 1]), ""


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fake /etc/ssh under tmp_path, a user with a key, and the module's outside world patched."""
    (tmp_path / "sshd_config.d").mkdir()
    (tmp_path / "sshd_config").write_text("# Debian\n#Port 22\nUsePAM yes\n")
    (tmp_path / "sshd_config.d" / "50-cloud-init.conf").write_text("PasswordAuthentication yes\n")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAAC3 fleetadmin@controller\n")
    fake = FakeSshd()

    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/sbin/" + name)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: fake(args, **kw))
    monkeypatch.setattr(sshd_config, "user_groups", lambda user: (str(home), ["fleetadmin", "sudo"]))
    monkeypatch.setattr(sshd_config, "connections", lambda addr, ports: [("10.89.0.1", "10.89.0.2", "22")])
    fake.root = tmp_path
    return fake


def run(host, settings, check=False, diff=False, **extra):
    root = host.root
    args = {"settings": settings, "path": str(root / "sshd_config.d" / "00-fleetforge.conf"),
            "main_config": str(root / "sshd_config"), "backup_dir": str(root / "backup"),
            "guard_user": "fleetadmin", "_ansible_check_mode": check, "_ansible_diff": diff}
    args.update(extra)
    with patch_module_args(args), pytest.raises((ExitJson, FailJson)) as caught:
        sshd_config.main()
    return caught.type is ExitJson, caught.value.args[0]


def snapshot(root):
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


HARDENED = {"PermitRootLogin": "no", "PasswordAuthentication": "no", "Ciphers": ["aes256-gcm@openssh.com"],
            "AllowUsers": ["deploy", "fleetadmin"]}


def test_first_run_writes_the_dropin_first_and_the_include(host):
    ok, result = run(host, HARDENED)
    assert ok and result["changed"] and result["include_changed"]
    root = host.root
    dropin = root / "sshd_config.d" / "00-fleetforge.conf"
    assert "PasswordAuthentication no\n" in dropin.read_text()
    assert oct(dropin.stat().st_mode & 0o777) == "0o600"
    assert (root / "sshd_config").read_text().splitlines()[2] == f"Include {root}/sshd_config.d/*.conf"
    # the drop-in wins over cloud-init's: the effective value is ours
    assert result["effective"]["passwordauthentication"] == "no"
    assert result["effective_before"]["passwordauthentication"] == "yes"
    assert result["changed_keys"] == ["AllowUsers", "Ciphers", "PasswordAuthentication", "PermitRootLogin"]
    assert result["not_effective"] == []
    assert result["backup_file"] == ""  # nothing was there before: restoring means removing
    assert (root / "backup" / "sshd_config.last-good").read_text() == "# Debian\n#Port 22\nUsePAM yes\n"
    assert result["guard"]["key_files"][str(root / "home" / ".ssh" / "authorized_keys")] == ["ssh-ed25519"]


def test_second_run_changes_nothing(host):
    run(host, HARDENED)
    before = snapshot(host.root)
    ok, result = run(host, HARDENED)
    assert ok and not result["changed"] and result["changed_keys"] == []
    assert snapshot(host.root) == before


def test_check_mode_changes_nothing_and_shows_the_diff(host):
    before = snapshot(host.root)
    ok, result = run(host, HARDENED, check=True, diff=True)
    assert ok and result["changed"]
    assert snapshot(host.root) == before
    assert "PermitRootLogin no" in result["diff"][0]["after"]
    assert result["diff"][1]["after"].startswith("# Debian\n#Port 22\nInclude ")


def test_a_dropin_with_a_loose_mode_is_tightened(host):
    run(host, HARDENED)
    dropin = host.root / "sshd_config.d" / "00-fleetforge.conf"
    dropin.chmod(0o644)
    ok, result = run(host, HARDENED)
    assert ok and result["changed"] and oct(dropin.stat().st_mode & 0o777) == "0o600"
    assert run(host, HARDENED)[1]["changed"] is False


def test_a_change_keeps_the_last_good_dropin(host):
    run(host, HARDENED)
    dropin = host.root / "sshd_config.d" / "00-fleetforge.conf"
    good = dropin.read_text()
    ok, result = run(host, dict(HARDENED, MaxAuthTries=3))
    assert ok and result["changed"] and not result["include_changed"]
    assert result["backup_file"] == str(host.root / "backup" / "00-fleetforge.conf.last-good")
    assert (host.root / "backup" / "00-fleetforge.conf.last-good").read_text() == good
    assert "MaxAuthTries 3\n" in dropin.read_text()
    assert result["main_backup_file"] == ""


@pytest.mark.parametrize("settings, message", [
    ({"AllowUsers": ["someoneelse"]}, "AllowUsers someoneelse does not include fleetadmin (from 10.89.0.1)"),
    ({"AuthenticationMethods": "password"}, "AuthenticationMethods password has no alternative"),
    ({"PubkeyAuthentication": False}, "PubkeyAuthentication is no"),
    ({"DenyGroups": ["sudo"]}, "DenyGroups sudo matches a group of fleetadmin"),
    ({"AuthorizedKeysFile": "/nonexistent/%u"}, "no authorized key in AuthorizedKeysFile /nonexistent/%u"),
    ({"Port": 2222}, "do not include 10.89.0.2:22"),
])
def test_lockout_guard_fails_before_writing(host, settings, message):
    run(host, HARDENED)
    before = snapshot(host.root)
    ok, result = run(host, dict(HARDENED, **settings))
    assert not ok
    assert result["msg"].startswith("lockout guard: the new sshd configuration would refuse fleetadmin")
    assert message in result["msg"] and "nothing was written" in result["msg"]
    assert snapshot(host.root) == before


def test_lockout_guard_also_refuses_in_check_mode(host):
    ok, result = run(host, {"AllowUsers": ["someoneelse"]}, check=True)
    assert not ok and "AllowUsers someoneelse" in result["msg"]


def test_invalid_config_fails_validation_before_writing(host):
    host.broken = True
    before = snapshot(host.root)
    ok, result = run(host, HARDENED)
    assert not ok and "validating the candidate sshd config failed" in result["msg"]
    assert "Bad configuration option" in result["msg"]
    assert snapshot(host.root) == before


def test_bad_directive_names_fail_first(host):
    ok, result = run(host, {"Ciphers": "a", "ciphers": "b"})
    assert not ok and "ciphers" in result["msg"] and host.calls == []


def test_commands_are_argument_lists_in_the_c_locale(host):
    run(host, HARDENED)
    assert host.calls, "sshd was never asked"
    for args, env in host.calls:
        assert args[0] == "/usr/sbin/sshd" and env == {"LC_ALL": "C"}
    validation = [call[0] for call in host.calls if "-t" in call[0]]
    assert len(validation) == 1 and validation[0][1:3] == ["-t", "-f"]
    specs = [call[0][call[0].index("-C") + 1] for call in host.calls if "-C" in call[0]]
    assert "user=fleetadmin,host=10.89.0.1,addr=10.89.0.1,laddr=10.89.0.2,lport=22" in specs


def test_the_staged_candidate_is_what_sshd_validates(host):
    """Nothing is validated in place: -t and -T read a temporary copy, never the real files."""
    run(host, HARDENED)
    for args, _env in host.calls:
        config = args[args.index("-f") + 1]
        assert not config.startswith(str(host.root)) and os.path.basename(config) == "sshd_config"
