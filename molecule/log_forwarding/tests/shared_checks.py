"""Checks shared by the scenarios that run a log collector (molecule/log_forwarding, and
molecule/monitoring, whose conftest puts this directory on sys.path): a line written on each client
arrives in the collector's per-host file, a collector outage loses none; and the PLAY RECAP of a run."""
import re
import time
import uuid

import pytest

FLEET_DIR = "/var/log/fleet"
PORT = 2514


def role_fixtures(collector_name, client_names):
    """The session fixtures `collector` and `clients` ({name: host}) of a scenario's conftest,
    hosts that run every command as root: `collector, clients = role_fixtures("mon", ["ex12", "ex13"])`."""
    @pytest.fixture(scope="session")
    def collector(lab_host):
        return lab_host(collector_name, sudo=True)

    @pytest.fixture(scope="session")
    def clients(lab_host):
        return {name: lab_host(name, sudo=True) for name in client_names}

    return collector, clients


def wait_until(check, timeout=60, step=2):
    """Poll `check` until it returns a true value or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def received(collector, client_name, tag, message):
    """Messages from `client_name` with syslog tag `tag` whose text matches the regex `message`, as
    found in its per-host file on the collector (sudo's log of the test's own commands, which
    carries the same text, has the tag sudo and does not count)."""
    path = f"{FLEET_DIR}/{client_name}/syslog.log"
    lines = collector.run(f"grep -aE '^[^ ]+ {client_name} {tag} {message}$' {path}").stdout
    return [line.split(f" {tag} ", 1)[1] for line in lines.splitlines()]


def relp_peers(collector):
    """Addresses of the hosts with an established connection to the collector's RELP port."""
    out = collector.check_output(f"ss -Htn state established '( sport = :{PORT} )'")
    peers = (line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines())
    return {peer.strip("[]").replace("::ffff:", "") for peer in peers}


def assert_a_line_from_each_client_arrives(collector, clients):
    """`clients`: {inventory name: testinfra host}. Each writes one logger line; each line must
    appear in that client's per-host file, and not in the collector's own syslog."""
    tokens = {}
    for name, client in clients.items():
        tokens[name] = f"hello-{uuid.uuid4().hex}"
        client.check_output(f"logger -t lftest {tokens[name]}")
    for name in clients:
        assert wait_until(lambda n=name: received(collector, n, "lftest", tokens[n]), timeout=30), \
            f"{tokens[name]} from {name} did not arrive in {FLEET_DIR}/{name}/syslog.log"
    for name in clients:
        own = collector.run(f"grep -c 'lftest {tokens[name]}' /var/log/syslog").stdout.strip()
        assert own in ("", "0"), f"{name}'s line also landed in the collector's own syslog"


def assert_an_outage_loses_no_line(collector, clients, lines=100, outage=15):
    """Stop the collector's rsyslog, write `lines` lines on every client, start it again after
    `outage` seconds: every line must arrive."""
    run = uuid.uuid4().hex[:8]
    collector.check_output("systemctl stop syslog.socket rsyslog.service")
    try:
        # Both clients write at once: the first lines go into the session the collector just
        # closed, and RELP must send them again after reconnecting; the rest wait in the disk queue.
        for client in clients.values():
            client.check_output(f"for i in $(seq 1 {lines}); do logger -t outage \"{run} line $i\"; done")
        time.sleep(outage)  # the outage outlasts a few retries (every 10 s by default)
    finally:
        collector.check_output("systemctl start rsyslog.service")

    want = {str(i) for i in range(1, lines + 1)}
    for name in clients:
        def got(name=name):
            return {m.rsplit(" ", 1)[1] for m in received(collector, name, "outage", f"{run} line [0-9]+")}
        wait_until(lambda got=got: want <= got(), timeout=60)
        missing = sorted(want - got(), key=int)
        assert not missing, f"{name}: {len(missing)} of {lines} lines lost: {missing}; " \
            + where_lost(clients[name], run, missing)


def where_lost(client, run, missing):
    """Where on the client the lost lines of an outage run were last seen: in the journal, in
    the client's own syslog file (what rsyslog received), and what journald and rsyslog said."""
    first = missing[0]
    journal = client.run(f"journalctl -q -t outage -g '{run} line {first}$' -o cat").stdout.strip()
    local = client.run(f"grep -c '{run} line {first}$' /var/log/syslog").stdout.strip()
    said = client.run("journalctl -q -u systemd-journald -u rsyslog -o cat --since '-10min' "
                      "| grep -iE 'missed|drop|suspend|resum|error' | tail -5").stdout.strip()
    return (f"line {first}: in the client's journal: {'yes' if journal else 'no'}, in its "
            f"/var/log/syslog: {local or '0'} time(s); journald/rsyslog said: {said or 'nothing'}")


def recap(result):
    """{host: (changed, failed)} from the PLAY RECAP of a run_playbook result."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.text)
    return {m[0]: (int(m[1]), int(m[2]))
            for m in re.findall(r"(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", text)}
