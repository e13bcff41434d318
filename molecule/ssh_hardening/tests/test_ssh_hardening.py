"""Outcomes of the hardened sshd: effective values, ssh-audit from the controller, the admin's access."""
import json
import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent
REPO = HERE.parent.parent
SSH_AUDIT = REPO / ".venv" / "bin" / "ssh-audit"
MODERN_KEX = {
    "debian12": "sntrup761x25519-sha512@openssh.com",
    "debian13": "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com",
}


def distro(host):
    return "debian12" if host.system_info.codename == "bookworm" else "debian13"


def port(host):
    return int(host.ansible.get_variables()["ansible_port"])


def effective(host):
    with host.sudo():
        out = host.check_output("/usr/sbin/sshd -T -C user=fleetadmin,host=10.0.0.1,addr=10.0.0.1")
    values = {}
    for line in out.splitlines():
        key, _sep, value = line.partition(" ")
        values.setdefault(key, []).append(value)
    return values


def ssh(host, lab_vars, *command, options=()):
    """Log in from the controller as the lab's admin user, with its key, the way Ansible does."""
    return subprocess.run(
        ["ssh", "-i", lab_vars["ansible_ssh_private_key_file"], "-p", str(port(host)),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", *options, "fleetadmin@127.0.0.1", *command],
        capture_output=True, text=True, timeout=60, check=False)


def test_effective_sshd_settings(host):
    values = effective(host)
    assert values["permitrootlogin"] == ["no"]
    assert values["passwordauthentication"] == ["no"]  # beats the cloud-init style 50-cloud-init.conf
    assert values["kbdinteractiveauthentication"] == ["no"]
    assert values["authenticationmethods"] == ["publickey"]
    assert values["maxauthtries"] == ["3"]
    assert values["maxsessions"] == ["4"]
    assert values["compression"] == ["no"] and values["tcpkeepalive"] == ["no"]
    assert values["x11forwarding"] == ["no"] and values["allowtcpforwarding"] == ["no"]
    assert values["disableforwarding"] == ["yes"]
    assert values["allowusers"] == ["deploy", "fleetadmin"]
    assert values["banner"] == ["/etc/ssh/sshd-banner"]
    assert values["kexalgorithms"] == [MODERN_KEX[distro(host)]]
    assert values["hostkey"] == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"]


def test_dropin_is_first_and_included_first(host):
    dropin = host.file("/etc/ssh/sshd_config.d/00-fleetforge.conf")
    assert dropin.exists and dropin.user == "root" and dropin.mode == 0o600
    with host.sudo():
        names = sorted(host.check_output("ls /etc/ssh/sshd_config.d").split())
    assert names[0] == "00-fleetforge.conf" and "50-cloud-init.conf" in names
    main = host.file("/etc/ssh/sshd_config").content_string
    directives = [line for line in main.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert directives[0] == "Include /etc/ssh/sshd_config.d/*.conf"


def test_weak_host_keys_and_small_moduli_are_gone(host):
    assert not host.file("/etc/ssh/ssh_host_ecdsa_key").exists
    assert not host.file("/etc/ssh/ssh_host_dsa_key").exists
    bits = host.check_output("ssh-keygen -lf /etc/ssh/ssh_host_rsa_key.pub").split()[0]
    assert int(bits) >= 3072
    assert host.check_output("awk '$5 < 3071' /etc/ssh/moduli | wc -l") == "0"
    assert int(host.check_output("wc -l < /etc/ssh/moduli")) > 50


def test_ssh_audit_reports_no_failure_or_warning(host):
    proc = subprocess.run([str(SSH_AUDIT), "-j", "-p", str(port(host)), "--skip-rate-test", "127.0.0.1"],
                          capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(proc.stdout)
    findings = [(kind, algo["algorithm"], level, algo["notes"][level])
                for kind in ("kex", "key", "enc", "mac") for algo in report[kind]
                for level in ("fail", "warn") if algo.get("notes", {}).get(level)]
    offered = {kind: [a["algorithm"] for a in report[kind]] for kind in ("kex", "key", "enc", "mac")}
    print(f"ssh-audit {distro(host)} {report['banner']['software']}: {offered}")
    assert findings == []
    assert offered["kex"][0] == MODERN_KEX[distro(host)].split(",")[0]
    assert "ecdsa-sha2-nistp256" not in offered["key"]


def test_admin_logs_in_with_the_key_and_keeps_sudo(host, lab_vars):
    proc = ssh(host, lab_vars, "sudo", "-n", "id", "-un")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "root"


def test_passwords_are_not_even_offered(host, lab_vars):
    options = ("-o", "PubkeyAuthentication=no",
               "-o", "PreferredAuthentications=password,keyboard-interactive")
    proc = ssh(host, lab_vars, "true", options=options)
    assert proc.returncode == 255
    assert "Permission denied (publickey)" in proc.stderr


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def controls_in_check_mode(run_playbook, *extra_vars):
    """Run controls.yml in check mode on every host: (plain output, {host: [control records]})."""
    result = run_playbook(HERE / "controls.yml", check=True, extra_vars=list(extra_vars))
    out = ANSI.sub("", result.stdout)
    assert result.returncode == 0, ANSI.sub("", result.text)[-3000:]
    controls = {}
    for line in re.findall(r'"msg": (".*")', out):
        words = json.loads(line).split(" ", 2)
        if words[0] == "CONTROLS":
            controls[words[1]] = json.loads(words[2].rsplit(" END", 1)[0])
    return out, controls


@pytest.fixture(scope="module")
def converged_check(run_playbook):
    return controls_in_check_mode(run_playbook)


@pytest.fixture(scope="module")
def compatible_check(run_playbook):
    return controls_in_check_mode(run_playbook, "ssh_hardening_crypto_level=compatible")


def test_check_mode_after_converge_changes_nothing_and_every_control_passes(host, converged_check):
    out, controls = converged_check
    name = host.backend.get_hostname()
    assert re.search(rf"{name}\s*:\s*ok=\d+\s+changed=0\s", out)
    statuses = {c["id"]: c["status"] for c in controls[name]}
    assert set(statuses.values()) == {"pass"}, statuses
    by_id = {c["id"]: c for c in controls[name]}
    assert by_id["ssh-kex"]["cis"] == {"debian12": "5.1.12", "rhel9": "5.1.5"}
    assert by_id["ssh-kex"]["evidence"] == "effective: KexAlgorithms " + MODERN_KEX[distro(host)]
    assert "lockout guard admitted fleetadmin" in by_id["ssh-admin-access"]["evidence"]
    assert len(controls[name]) == 24


def test_compatible_level_in_check_mode_would_only_widen_the_crypto(host, compatible_check):
    _out, controls = compatible_check
    name = host.backend.get_hostname()
    failing = sorted(c["id"] for c in controls[name] if c["status"] != "pass")
    assert failing == ["ssh-kex", "ssh-macs"]  # check mode: would change, so not compliant yet
    kex = next(c for c in controls[name] if c["id"] == "ssh-kex")
    assert kex["evidence"].startswith("would set: KexAlgorithms ") and "curve25519-sha256" in kex["evidence"]
    # and check mode told the truth: nothing on the host moved
    assert effective(host)["kexalgorithms"] == [MODERN_KEX[distro(host)]]
