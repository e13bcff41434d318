"""Outcomes on unprivileged lab hosts after converge (SSH as fleetadmin through the firewall's
allow-list). Kernel-level controls are proven in molecule/hardening_vm; here the tests check that
the container case writes nothing that belongs to the host's kernel and says so."""
import re

import pytest

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


def test_firewall_ruleset_loads_and_denies_inbound_by_default(host, lab_vars):
    """The lab's containers have no CAP_NET_ADMIN, so the ruleset cannot be loaded in their own
    network namespace (the role reports that); it is loaded here into a scratch user+network
    namespace, a stand-in for the host's, and listed back from the kernel."""
    with host.sudo():
        assert host.run("nft list ruleset").rc != 0
        loaded = host.run("unshare -rn sh -c 'nft -f /etc/nftables.conf && nft list table inet fleetforge'")
    assert loaded.rc == 0, loaded.stderr
    subnet = re.sub(r"\.\d+$", ".0/24", lab_vars["fleetlab_ssh_source"])
    assert "type filter hook input priority filter; policy drop;" in loaded.stdout
    assert f"elements = {{ {subnet} }}" in loaded.stdout
    assert "tcp dport 22 ip saddr @ssh_allowed_v4 accept" in loaded.stdout
    assert host.file("/etc/nftables.d").is_directory
    assert host.service("nftables").is_enabled
