"""Logs of playbooks/monitoring.yml: the other hosts' lines reach the first monitoring host (the collector)
over RELP inside TLS, and a collector outage loses none (checks shared with molecule/log_forwarding,
which also proves the collector's refusals of foreign and plain-text senders)."""
from shared_checks import (
    PORT,
    assert_a_line_from_each_client_arrives,
    assert_an_outage_loses_no_line,
    relp_peers,
)

PKI = "/etc/fleetforge/pki"
# A TLS handshake with the collector's port from a client host, with the host's own certificate;
# the collector's certificate is checked against the fleet CA and the name "mon".
HANDSHAKE = f"""
import socket, ssl, sys
context = ssl.create_default_context(cafile="{PKI}/ca.crt")
context.load_cert_chain("{PKI}/host.crt", "{PKI}/host.key")
with socket.create_connection((sys.argv[1], {PORT}), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="mon") as tls:
        print(tls.version())
"""


def test_a_logger_line_on_each_client_arrives_at_the_collector(collector, clients):
    assert_a_line_from_each_client_arrives(collector, clients)


def test_the_clients_are_connected_to_the_collector_over_tls(collector, clients, addresses):
    assert {addresses[name] for name in clients} <= relp_peers(collector)
    for name, client in clients.items():
        handshake = client.run("python3 -c %s %s", HANDSHAKE, addresses["mon"])
        assert handshake.rc == 0 and handshake.stdout.startswith("TLSv1."), (name, handshake.stderr)


def test_a_collector_outage_loses_no_line(collector, clients):
    assert_an_outage_loses_no_line(collector, clients)
