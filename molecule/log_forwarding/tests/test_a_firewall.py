"""The collector sits behind the hardening role's firewall (input policy drop, prepare.yml): its
port is open to the allowed networks through the role's drop-in, so the delivery tests pass only
because that rule is loaded."""


def test_the_collectors_port_is_opened_by_the_drop_in_rule(collector, lab_vars):
    network = lab_vars["fleetlab_ssh_source"].rsplit(".", 1)[0] + ".0/24"
    rule = f"ip saddr {network} tcp dport 2514 accept"
    dropin = collector.file("/etc/nftables.d/60-fleetforge-log-collector.nft")
    assert f"add rule inet fleetforge input {rule}" in dropin.content_string
    chain = collector.check_output("nft list chain inet fleetforge input")
    assert "policy drop;" in chain
    assert rule in chain, chain


def test_no_drop_in_where_the_hardening_firewall_is_not_managed(clients):
    client = clients["lf-d12"]
    assert not client.file("/etc/nftables.d/60-fleetforge-log-collector.nft").exists
