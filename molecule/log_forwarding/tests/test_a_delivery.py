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
