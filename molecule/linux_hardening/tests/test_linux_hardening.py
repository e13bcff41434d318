"""Outcomes on unprivileged lab hosts after converge (SSH as fleetadmin through the firewall's
allow-list). Kernel-level controls are proven in molecule/hardening_vm; here the tests check that
the container case writes nothing that belongs to the host's kernel and says so."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))

SYSCTL = "/etc/sysctl.d/99-zz-fleetforge.conf"


def test_sysctl_drop_in_has_network_keys_and_no_host_kernel_keys(host):
    text = host.file(SYSCTL).content_string
    assert "net.ipv4.tcp_syncookies = 1" in text
    assert "net.ipv4.conf.all.accept_redirects = 0" in text
    # in a container kernel.*, vm.* and fs.* would land on this machine's kernel at boot
    assert not re.search(r"^(kernel|vm|fs)\.", text, re.M), text


def test_runtime_kernel_settings_were_not_touched(host):
    # /proc/sys is read-only in an unprivileged container: the role must not have failed on it
    assert host.run("test -w /proc/sys/kernel/kptr_restrict").rc != 0


def test_module_blocklist(host):
    text = host.file("/etc/modprobe.d/60-fleetforge.conf").content_string
    names = ("cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "usb-storage", "firewire-core",
             "dccp", "tipc", "rds", "sctp")
    for name in names:
        assert f"install {name} /bin/true\nblacklist {name}\n" in text
    # the generic profile on a host without EFI: vfat is level 2 and the default level is 1
    assert "overlay" not in text and "vfat" not in text


def test_login_defs_and_umask(host):
    defs = host.file("/etc/login.defs").content_string
    assert re.search(r"^PASS_MAX_DAYS\s+365$", defs, re.M)
    assert re.search(r"^UMASK\s+027$", defs, re.M)
    assert "umask 027" in host.file("/etc/profile.d/60-fleetforge.sh").content_string
    assert host.run("bash -lc umask").stdout.strip() == "0027"


def test_pam_stack_has_faillock_with_the_ansible_user_exempt(host):
    auth = host.file("/etc/pam.d/common-auth").content_string
    assert re.search(r"pam_succeed_if\.so quiet user in fleetadmin\n.*pam_faillock\.so preauth", auth)
    assert "pam_faillock.so authfail" in auth
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    assert "pam_pwhistory.so remember=24" in host.file("/etc/pam.d/common-password").content_string
    assert "deny = 5" in host.file("/etc/security/faillock.conf").content_string


def test_sudo_still_works_for_the_ansible_user(host):
    # not through host.sudo(): fleetadmin itself asks sudo, as Ansible's become does
    cmd = host.run("sudo -n id -u")
    assert cmd.rc == 0 and cmd.stdout.strip() == "0", cmd.stderr
    sudoers = host.file("/etc/sudoers.d/60-fleetforge")
    assert sudoers.mode == 0o440
    assert "Defaults use_pty" in sudoers.content_string
    assert host.file("/var/log/sudo.log").exists


def test_audit_rules_written_but_not_loadable_here(host):
    rules = host.file("/etc/audit/rules.d/60-fleetforge.rules").content_string
    assert "-w /etc/sudoers -p wa -k scope" in rules
    privileged = "-a always,exit -F path=/usr/bin/sudo -F perm=x -F auid>=1000 -F auid!=unset -k privileged"
    assert privileged in rules
    assert "-k kernel_modules" in rules
    assert host.package("auditd").is_installed
    with host.sudo():
        # the claim the role reports (not_applicable) holds: no audit subsystem in the container
        assert host.run("auditctl -l").rc != 0


def test_sensitive_file_modes(host):
    assert host.file("/etc/shadow").mode & 0o137 == 0
    assert host.file("/etc/crontab").mode == 0o600
    assert host.file("/etc/cron.d").mode == 0o700
    assert host.file("/etc/cron.allow").content_string == "root\n"


@pytest.mark.parametrize("path", ["/etc/issue", "/etc/issue.net", "/etc/motd"])
def test_banners_carry_no_os_details(host, path):
    text = host.file(path).content_string
    assert "Authorised use only" in text
    assert not re.search(r"debian|\\[mrsv]", text, re.I)


def test_legacy_packages_absent_and_tools_present(host):
    for name in ("telnet", "rsh-client", "prelink"):
        assert not host.package(name).is_installed
    for name in ("apparmor", "nftables", "unattended-upgrades", "systemd-timesyncd", "libpam-pwquality"):
        assert host.package(name).is_installed


def test_journal_core_dumps_and_updates(host):
    assert "Storage=persistent" in host.file("/etc/systemd/journald.conf").content_string
    assert "* hard core 0" in host.file("/etc/security/limits.d/60-fleetforge-coredump.conf").content_string
    assert "Storage=none" in host.file("/etc/systemd/coredump.conf").content_string
    assert 'APT::Periodic::Unattended-Upgrade "1"' in \
        host.file("/etc/apt/apt.conf.d/52fleetforge-unattended-upgrades").content_string


def _peer(host, lab_host, lab_hosts):
    """Another lab host of the scenario: same network, outside the SSH allow-list."""
    name = host.backend.get_hostname()
    others = sorted(n for n in lab_hosts if n != name)
    assert others, f"the scenario has no lab host besides {name} to connect from"
    return lab_host(others[0])


def _address(host):
    return host.check_output("ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1")


def _connects(client, address, port):
    """TCP connect from client to address:port within 3 s: 'open', 'refused' or 'timeout' (dropped)."""
    probe = ("import socket,sys\n"
             "s=socket.socket(); s.settimeout(3)\n"
             "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
             "except socket.timeout: print('timeout')\n"
             "except ConnectionRefusedError: print('refused')\n")
    return client.check_output("python3 -c %s %s %s", probe, address, str(port))


def test_firewall_is_loaded_in_the_hosts_own_network_namespace(host, lab_vars):
    """CAP_NET_ADMIN: the role's table is the host's live ruleset, and the probe says so."""
    with host.sudo():
        table = host.run("nft list table inet fleetforge")
    assert table.rc == 0, table.stderr
    assert "type filter hook input priority filter; policy drop;" in table.stdout
    assert f"elements = {{ {lab_vars['fleetlab_ssh_source']} }}" in table.stdout
    assert "tcp dport 22 ip saddr @ssh_allowed_v4 accept" in table.stdout
    assert host.service("nftables").is_enabled and host.service("nftables").is_running
    probe = (REPO / "roles" / "linux_hardening" / "files" / "probe.py").read_text()
    with host.sudo():
        facts = json.loads(host.check_output("python3 -c %s fleetadmin", probe))
    assert facts["nft_usable"] is True, facts["nft_error"]


def test_ssh_from_the_allow_list_and_nothing_else(host, lab_host, lab_hosts):
    """SSH works through the gateway (this very connection); from the peer host on the same
    network, neither SSH nor a listening port outside the allow-list answers (dropped)."""
    assert host.run("true").rc == 0
    address, peer = _address(host), _peer(host, lab_host, lab_hosts)
    with host.sudo():
        host.check_output("systemd-run --unit=fleetforge-test-listener --collect "
                          "python3 -m http.server 8081 --bind 0.0.0.0")
    try:
        assert host.run("sleep 1; ss -ltn 'sport = :8081' | grep -q 8081").rc == 0
        # the listener answers from the host itself (loopback is accepted) ...
        assert _connects(host, "127.0.0.1", 8081) == "open"
        # ... but not from another address: inbound policy drop
        assert _connects(peer, address, 8081) == "timeout"
        assert _connects(peer, address, 22) == "timeout"
    finally:
        with host.sudo():
            host.run("systemctl stop fleetforge-test-listener")


def test_firewall_reload_is_idempotent_and_keeps_ssh(host):
    """Reloading (what the role's handler and every boot do) replaces the table, never stacks it."""
    with host.sudo():
        before = host.check_output("nft list table inet fleetforge")
        for _ in range(2):
            assert host.run("systemctl reload nftables").rc == 0
        after = host.check_output("nft list table inet fleetforge")
        assert host.check_output("nft list tables").count("inet fleetforge") == 1
    assert after == before
    assert host.run("true").rc == 0


def test_fail2ban_guards_ssh_but_never_bans_the_allow_list(host, lab_vars, lab_hosts):
    gateway = lab_vars["fleetlab_ssh_source"]
    with host.sudo():
        status = host.check_output("fail2ban-client status sshd")
        assert re.search(r"Currently banned:\s+0\b", status), status
        assert gateway in host.check_output("fail2ban-client get sshd ignoreip")
        # a ban lands in nftables (the table fail2ban owns), so bans really filter here
        host.check_output("fail2ban-client set sshd banip 192.0.2.7")
        try:
            assert "192.0.2.7" in host.check_output("nft list ruleset")
        finally:
            host.run("fail2ban-client set sshd unbanip 192.0.2.7")
    # repeated failed logins from the operator's network (more than maxretry): fail2ban sees them
    # and ignores them, nothing is banned, SSH keeps working
    for _ in range(8):
        subprocess.run(["ssh", "-p", str(lab_hosts[host.backend.get_hostname()]["ansible_port"]),
                        "-o", "BatchMode=yes",
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "PubkeyAuthentication=no", "-o", "ConnectTimeout=5",
                        "nosuchuser@127.0.0.1", "true"],
                       capture_output=True, check=False, timeout=30)
    with host.sudo():
        seen = host.run(f"for i in $(seq 20); do grep -q 'Ignore {gateway} by ip' /var/log/fail2ban.log "
                        "&& exit 0; sleep 1; done; exit 1")
        status = host.check_output("fail2ban-client status sshd")
    assert seen.rc == 0, "fail2ban did not see the failed logins from the allow-list"
    assert gateway not in status, status
    assert host.run("true").rc == 0


def test_rkhunter_has_its_baseline_and_runs_daily(host):
    """Debian's package builds the file property baseline itself; were it missing, the role's
    background unit (fleetforge-baseline) would build it: either way it is there."""
    if host.backend.get_hostname() != "debian12":
        pytest.skip("rkhunter is proven on debian12 only (molecule.yml host_vars)")
    with host.sudo():
        built = host.run("for i in $(seq 90); do test -s /var/lib/rkhunter/db/rkhunter.dat && exit 0; "
                         "sleep 2; done; exit 1")
        assert built.rc == 0, host.run("journalctl -u fleetforge-baseline --no-pager | tail -20").stdout
    assert 'CRON_DAILY_RUN="true"' in host.file("/etc/default/rkhunter").content_string
    assert 'APT_AUTOGEN="true"' in host.file("/etc/default/rkhunter").content_string


def test_usbguard_policy_installed_daemon_off_in_a_container(host):
    assert host.package("usbguard").is_installed
    assert host.file("/etc/usbguard/rules.conf").exists
    # no USB bus in a container: the role's drop-ins, in place before the package, made systemd
    # skip the start the package attempted (it never ran, so it was never restarted nor left
    # "active" on a dead PID), and the role disabled the unit the package enabled
    assert not host.service("usbguard").is_enabled
    for unit in ("usbguard", "usbguard-dbus"):
        shown = host.run(f"systemctl show {unit} -p ActiveState -p ConditionResult -p NRestarts").stdout
        state = dict(line.split("=", 1) for line in shown.split())
        assert state == {"ActiveState": "inactive", "ConditionResult": "no", "NRestarts": "0"}, (unit, state)
    dropin = host.file("/etc/systemd/system/usbguard.service.d/50-fleetforge-not-in-containers.conf")
    assert "ConditionVirtualization=!container" in dropin.content_string


def test_compilers_are_restricted_and_home_dirs_are_private(host):
    """Every compiler the role's probe finds is closed to others; none may stay open."""
    probe = (REPO / "roles" / "linux_hardening" / "files" / "probe.py").read_text()
    with host.sudo():
        found = [c["path"] for c in json.loads(host.check_output("python3 -c %s", probe))["compilers"]]
        listed = host.check_output("ls -L /usr/bin/as /usr/bin/cc /usr/bin/gcc 2>/dev/null; true").split()
    assert len(found) >= len(listed)
    for path in found:
        assert host.file(path).mode & 0o007 == 0 and host.file(path).user == "root", path
    assert host.file("/home/fleetadmin").mode & 0o027 == 0


def test_needrestart_lists_and_core_size_is_zero_in_login_shells(host):
    assert "$nrconf{restart} = 'l';" in host.file("/etc/needrestart/conf.d/60-fleetforge.conf").content_string
    assert host.run("bash -lc 'ulimit -c'").stdout.strip() == "0"


def test_no_security_update_or_residual_configuration_left(host):
    with host.sudo():
        pending = host.check_output("apt-get --simulate upgrade | grep '^Inst' | grep -c -- -security; true")
        residual = host.check_output("dpkg -l | grep -c '^rc'; true")
    assert pending.strip() == "0"
    assert residual.strip() == "0"
