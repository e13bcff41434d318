"""The fleet CA's certificates are installed and work for TLS between two hosts."""
import os
import subprocess
import textwrap

import pytest

PKI = "/etc/fleetforge/pki"
CA_DIR = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pki")
CONVERGE = os.path.join(os.path.dirname(__file__), "..", "converge.yml")


@pytest.fixture(scope="module")
def hosts(lab_host):
    """The two hosts by inventory name, running every command as root."""
    return {name: lab_host(name, sudo=True) for name in ("pki12", "pki13")}


@pytest.mark.parametrize("name", ["pki12", "pki13"])
def test_files_and_modes(hosts, name):
    host = hosts[name]
    key = host.file(f"{PKI}/host.key")
    assert key.mode == 0o640 and key.user == "root" and key.group == "fleetpki"
    for crt in ("ca.crt", "host.crt"):
        assert host.file(f"{PKI}/{crt}").mode == 0o644
    ca_key = os.path.join(CA_DIR, "ca.key")
    assert os.path.exists(ca_key) and not host.file(f"{PKI}/ca.key").exists


def test_certificate_names_and_chain(hosts):
    for name, host in hosts.items():
        pem = host.file(f"{PKI}/host.crt").content_string
        text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, text=True,
                              capture_output=True, check=True).stdout
        address = _address(host)
        assert f"DNS:{name}" in text and f"IP Address:{address}" in text
        assert "CA:FALSE" in text
        verify = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(CA_DIR, "ca.crt")],
                                input=pem, text=True, capture_output=True, check=False)
        assert verify.returncode == 0, verify.stderr


def _address(host):
    """The host's address on the lab network (what fleetlab_address says)."""
    return host.check_output("hostname -I").split()[0]


SERVER = textwrap.dedent("""
    import socket, ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("{pki}/host.crt", "{pki}/host.key")
    srv = socket.create_server(("0.0.0.0", 8443))
    conn, _ = srv.accept()
    with ctx.wrap_socket(conn, server_side=True) as tls:
        tls.sendall(b"hello from " + socket.gethostname().encode())
""")
CLIENT = textwrap.dedent("""
    import socket, ssl, sys
    ctx = ssl.create_default_context(cafile="{pki}/ca.crt")
    with socket.create_connection((sys.argv[1], 8443), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sys.argv[2]) as tls:
            print(tls.recv(100).decode())
""")


def _handshake(server, client, address, name):
    server.run("rm -f /tmp/srv.py /tmp/cli.py")
    server.run(f"cat > /tmp/srv.py <<'EOF'\n{SERVER.format(pki=PKI)}EOF")
    client.run(f"cat > /tmp/cli.py <<'EOF'\n{CLIENT.format(pki=PKI)}EOF")
    server.run("sh -c 'timeout 30 python3 /tmp/srv.py >/dev/null 2>&1 &'")
    for _ in range(20):
        if server.run("ss -ltn | grep -q ':8443 '").rc == 0:
            break
        server.run("sleep 0.5")
    return client.run(f"python3 /tmp/cli.py {address} {name}")


def test_tls_between_hosts_checks_ca_and_name(hosts):
    server, client = hosts["pki13"], hosts["pki12"]
    address = _address(server)
    ok = _handshake(server, client, address, "pki13")
    assert ok.rc == 0 and "hello from pki13" in ok.stdout, ok.stderr
    wrong = _handshake(server, client, address, "someone-else")
    assert wrong.rc != 0 and "certificate verify failed" in wrong.stderr


NEW_NAME = '{"pki_host_sans": ["metrics.example.internal"]}'


def test_new_name_reissues_the_certificate(run_playbook, hosts):
    first = run_playbook(CONVERGE, limit="pki12", extra_vars=[NEW_NAME])
    assert first.returncode == 0, first.text
    pem = hosts["pki12"].file(f"{PKI}/host.crt").content_string
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, text=True,
                          capture_output=True, check=True).stdout
    assert "DNS:metrics.example.internal" in text
    again = run_playbook(CONVERGE, limit="pki12", extra_vars=[NEW_NAME])
    assert again.returncode == 0 and "changed=0" in again.text, again.text
    # back to the converged names so the scenario's own state stays as converge left it
    assert run_playbook(CONVERGE, limit="pki12").returncode == 0


def test_check_mode_on_the_converged_fleet_reports_nothing(run_playbook):
    proc = run_playbook(CONVERGE, check=True)
    assert proc.returncode == 0, proc.text
    assert proc.text.count("changed=0") == 2, proc.text
