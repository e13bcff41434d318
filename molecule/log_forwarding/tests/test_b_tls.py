"""TLS is what lets a line in: the collector refuses senders without TLS or without a fleet
certificate, and a client refuses a collector whose certificate does not carry the expected name.

Each case runs a second, throw-away rsyslogd on a client (its own socket, spool and RELP action),
so it speaks RELP exactly as the role's forwarder does. A control case with the role's own settings
must deliver: the refusals cannot come from a broken harness."""
import uuid

import pytest
from shared_checks import FLEET_DIR, wait_until

PKI = "/etc/fleetforge/pki"
ROGUE = "/etc/fleetforge/test-rogue"  # same host names, certificates from another CA (prepare.yml)

CASES = {
    "control": {"tls": True, "ca": PKI, "cert": PKI, "peer": "lf-coll"},
    "no-tls": {"tls": False},
    "rogue-ca": {"tls": True, "ca": ROGUE, "cert": ROGUE, "peer": "lf-coll"},
    "wrong-name": {"tls": True, "ca": PKI, "cert": PKI, "peer": "not-the-collector"},
}


def _probe_config(name, case, target, tag):
    tls = ""
    if case["tls"]:
        tls = (f' tls="on" tls.authMode="name" tls.permittedPeer=["{case["peer"]}"]'
               f' tls.caCert="{case["ca"]}/ca.crt" tls.myCert="{case["cert"]}/host.crt"'
               f' tls.myPrivKey="{case["cert"]}/host.key"')
    return f"""global(workDirectory="/run/lfprobe-{name}")
module(load="imuxsock" SysSock.Use="off")
module(load="omrelp")
input(type="imuxsock" Socket="/run/lfprobe-{name}/log.sock")
:syslogtag, startswith, "{tag}" action(type="omrelp" target="{target}" port="2514"{tls}
    template="RSYSLOG_SyslogProtocol23Format" action.resumeRetryCount="-1" action.resumeInterval="2")
"""


@pytest.fixture(scope="module")
def probes(clients, collector_address):
    client = clients["lf-d12"]
    tokens = {}
    for name, case in CASES.items():
        tag = f"lfprobe{name.replace('-', '')}"
        tokens[name] = f"{tag}-{uuid.uuid4().hex}"
        client.check_output(f"mkdir -p /run/lfprobe-{name}")
        config = _probe_config(name, case, collector_address, tag)
        client.check_output(f"cat > /run/lfprobe-{name}/rsyslog.conf <<'EOF'\n{config}EOF")
        client.check_output(f"rsyslogd -N1 -f /run/lfprobe-{name}/rsyslog.conf")
        client.check_output(f"systemd-run --unit lfprobe-{name} --collect "
                            f"rsyslogd -n -iNONE -f /run/lfprobe-{name}/rsyslog.conf")
    for name in CASES:
        sock = f"/run/lfprobe-{name}/log.sock"
        wait_until(lambda s=sock: client.run(f"test -S {s}").rc == 0, timeout=10, step=1)
        client.check_output(f"logger -u {sock} -t {tokens[name].split('-')[0]} {tokens[name]}")
    yield tokens
    for name in CASES:
        client.run(f"systemctl stop lfprobe-{name}")
        client.run(f"rm -rf /run/lfprobe-{name}")


def _arrived(collector, token):
    """The probe's own line (tag and text), not sudo's log of the command that wrote it."""
    tag = token.split("-")[0]
    return collector.run(f"grep -qE '^[^ ]+ lf-d12 {tag} {token}$' {FLEET_DIR}/lf-d12/syslog.log").rc == 0


def test_the_control_sender_with_the_fleet_certificate_delivers(collector, probes):
    assert wait_until(lambda: _arrived(collector, probes["control"]), timeout=30)


@pytest.mark.parametrize("case", ["no-tls", "rogue-ca", "wrong-name"])
def test_a_sender_that_fails_tls_or_the_name_check_delivers_nothing(collector, clients, probes, case):
    # by now the control line has arrived: these had the same time and more retries
    assert wait_until(lambda: _arrived(collector, probes["control"]), timeout=30)
    assert not _arrived(collector, probes[case])
    # refused, not crashed: the probe is still up and retrying
    assert clients["lf-d12"].run(f"systemctl is-active lfprobe-{case}").stdout.strip() == "active"
