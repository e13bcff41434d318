"""Lines written on the clients arrive in the collector's per-host files over RELP inside TLS,
and a collector outage loses none of them."""
import time
import uuid

from conftest import FLEET_DIR, wait_until


def _received(collector, client_name, tag, message):
    """Messages from `client_name` with syslog tag `tag` whose text matches the regex `message`, as
    found in its per-host file on the collector (sudo's log of the test's own commands, which
    carries the same text, has the tag sudo and does not count)."""
    path = f"{FLEET_DIR}/{client_name}/syslog.log"
    lines = collector.run(f"grep -aE '^[^ ]+ {client_name} {tag} {message}$' {path}").stdout
    return [line.split(f" {tag} ", 1)[1] for line in lines.splitlines()]


def test_a_logger_line_on_each_client_arrives_in_its_per_host_file(collector, clients):
    tokens = {}
    for name, client in clients.items():
        tokens[name] = f"lf-hello-{uuid.uuid4().hex}"
        client.check_output(f"logger -t lftest {tokens[name]}")
    for name in clients:
        assert wait_until(lambda n=name: _received(collector, n, "lftest", tokens[n]), timeout=30), \
            f"{tokens[name]} from {name} did not arrive in {FLEET_DIR}/{name}/syslog.log"
    # per-host files only: the clients' lines stay out of the collector's own syslog
    assert collector.run(f"grep -c 'lftest {tokens['lf-d12']}' /var/log/syslog").stdout.strip() == "0"


def test_the_collector_listens_for_relp_and_the_clients_are_connected(collector, collector_address):
    assert collector.socket("tcp://0.0.0.0:2514").is_listening
    established = collector.check_output("ss -Htn state established '( sport = :2514 )'")
    assert len(established.splitlines()) >= 2, established


def test_a_collector_outage_loses_no_line(collector, clients):
    n = 100
    run = uuid.uuid4().hex[:8]
    collector.check_output("systemctl stop syslog.socket rsyslog.service")
    try:
        # Both clients write at once: the first lines go into the session the collector just
        # closed, and RELP must send them again after reconnecting; the rest wait in the disk queue.
        for client in clients.values():
            client.check_output(f"for i in $(seq 1 {n}); do logger -t outage \"{run} line $i\"; done")
        time.sleep(15)  # the outage outlasts a few retries (every 10 s)
    finally:
        collector.check_output("systemctl start rsyslog.service")

    want = {str(i) for i in range(1, n + 1)}
    for name in clients:
        def got(name=name):
            return {m.rsplit(" ", 1)[1] for m in _received(collector, name, "outage", f"{run} line [0-9]+")}
        wait_until(lambda got=got: want <= got(), timeout=60)
        missing = sorted(want - got(), key=int)
        assert not missing, f"{name}: {len(missing)} of {n} lines lost: {missing}"
