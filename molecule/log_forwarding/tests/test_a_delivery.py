"""Lines written on the clients arrive in the collector's per-host files over RELP inside TLS,
and a collector outage loses none of them (checks shared with molecule/monitoring: shared_checks.py)."""
from shared_checks import assert_a_line_from_each_client_arrives, assert_an_outage_loses_no_line, relp_peers


def test_a_logger_line_on_each_client_arrives_in_its_per_host_file(collector, clients):
    assert_a_line_from_each_client_arrives(collector, clients)


def test_the_collector_listens_for_relp_and_the_clients_are_connected(collector, clients):
    assert collector.socket("tcp://0.0.0.0:2514").is_listening
    addresses = {client.interface.default().addresses[0] for client in clients.values()}
    assert addresses <= relp_peers(collector)


def test_a_collector_outage_loses_no_line(collector, clients):
    assert_an_outage_loses_no_line(collector, clients)


def test_the_journald_to_rsyslog_socket_holds_a_burst(clients):
    """The role's sysctl file raises net.unix.max_dgram_qlen (kernel default 10) and the running
    value is at least the file's. In the lab the running value is preset by fleetlab (podman
    --sysctl, a stand-in for the role's runtime write, which an unprivileged container cannot
    do: read-only /proc/sys)."""
    # runs after the outage check above: its bursts of 100 lines, written while rsyslog was busy
    # queueing to disk, dropped none on the way from journald to rsyslog
    for name, client in clients.items():
        conf = client.file("/etc/sysctl.d/60-fleetforge-log-forwarding.conf")
        assert conf.exists, f"{name}: no sysctl file"
        assert "net.unix.max_dgram_qlen = 512" in conf.content_string, conf.content_string
        assert int(client.check_output("cat /proc/sys/net/unix/max_dgram_qlen")) >= 512, name
        missed = client.run("journalctl -q -u systemd-journald -o cat -g 'Forwarding to syslog missed'")
        assert not missed.stdout.strip(), f"{name}: {missed.stdout}"
