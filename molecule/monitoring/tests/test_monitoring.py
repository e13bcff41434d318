"""End-to-end outcomes: exporters behind TLS, basic auth and the firewall; Prometheus scraping them all."""
import hashlib
import ipaddress
import json
import re
import time

import pytest
from conftest import ARCHIVE, LAB, REPO, VERSION, lab_archive_sha256

CA = "/etc/fleetforge/pki/ca.crt"
SCRAPE_AUTH = "prometheus:lab-scrape-password"
ADMIN_AUTH = "admin:lab-admin-password"
MONITORING = {"mon", "mon13"}  # an HA pair: each Prometheus scrapes every exporter
ARCHIVE_HOSTS = {"mon", "ex12"}


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


# The lab hosts have no curl: requests are made with the hosts' own Python.
FETCH = r"""
import base64, ssl, sys, urllib.error, urllib.request
url, ca, auth = sys.argv[1:4]
request = urllib.request.Request(url)
if auth:
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
context = ssl.create_default_context(cafile=ca) if ca else None
try:
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        code, body = response.status, response.read()
except urllib.error.HTTPError as error:
    code, body = error.code, error.read()
sys.stdout.write("%d\n%s" % (code, body.decode(errors="replace")))
"""


def fetch(host, url, ca="", auth=""):
    """(exit code, HTTP status, body) of a request made on the host."""
    cmd = host.run("python3 -c %s %s %s %s", FETCH, url, ca, auth)
    code, _, body = cmd.stdout.partition("\n")
    return cmd.rc, code.strip(), body


# ------------------------------------------------------------------ the exporter on every host
def test_exporter_runs_as_its_own_user_in_a_sandbox(host):
    service = host.service("node_exporter")
    assert service.is_running and service.is_enabled
    props = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show node_exporter -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
        "-p PrivateTmp -p CapabilityBoundingSet").splitlines())
    assert props["User"] == "node-exp"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "read-only"
    assert props["PrivateTmp"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    assert host.user("node-exp").shell == "/usr/sbin/nologin"
    assert "fleetpki" in host.user("node-exp").groups


def test_metrics_need_tls_and_the_password(host, name, addresses):
    url = f"https://{addresses[name]}:9100/metrics"
    rc, code, body = fetch(host, url, CA, SCRAPE_AUTH)
    assert (rc, code) == (0, "200")
    assert "node_exporter_build_info" in body
    assert fetch(host, url, CA)[1] == "401"
    assert fetch(host, url, CA, "prometheus:wrong")[1] == "401"
    # plain HTTP gets no metrics
    assert "node_exporter_build_info" not in fetch(host, f"http://{addresses[name]}:9100/metrics")[2]


def test_password_is_stored_as_bcrypt_only(host):
    with host.sudo():
        web = host.file("/etc/node_exporter/web.yml")
        assert web.mode == 0o640 and web.group == "node-exp"
        content = web.content_string
    assert "lab-scrape-password" not in content
    assert '"prometheus": "$2b$12$' in content


def test_textfile_collector_reads_its_directory(host, name, addresses):
    with host.sudo():
        host.run_test("printf 'fleet_lab_probe 42\\n' > /var/lib/node_exporter/textfile/lab.prom")
    body = fetch(host, f"https://{addresses[name]}:9100/metrics", CA, SCRAPE_AUTH)[2]
    assert "fleet_lab_probe 42" in body


def test_install_path_per_host(host, name):
    exec_start = host.check_output("systemctl show node_exporter -p ExecStart")
    if name in ARCHIVE_HOSTS:
        assert "path=/usr/local/bin/node_exporter" in exec_start
    else:
        assert "path=/usr/bin/prometheus-node-exporter" in exec_start
        assert host.package("prometheus-node-exporter").is_installed
        # the package's own unit stays masked: one exporter per host
        assert host.file("/etc/systemd/system/prometheus-node-exporter.service").linked_to == "/dev/null"


def test_archive_came_from_the_mirror_with_its_checksum(host, name):
    if name not in ARCHIVE_HOSTS:
        pytest.skip("installed from Debian's package")
    digest = lab_archive_sha256()
    with host.sudo():
        cached = host.file(f"/var/cache/fleetforge/node_exporter/{ARCHIVE}")
        assert cached.sha256sum == digest
        unpacked = host.file(f"/opt/node_exporter/{VERSION}-{digest[:12]}/node_exporter")
        assert host.file("/usr/local/bin/node_exporter").sha256sum == unpacked.sha256sum
    if name == "mon":   # downloaded once on the controller, then copied
        controller = REPO / ".lab" / LAB / "controller-cache" / ARCHIVE
        assert hashlib.sha256(controller.read_bytes()).hexdigest() == digest


# ------------------------------------------------------------------ the firewall contract
def admitted_ipv4(rule):
    """Every IPv4 address an nft rule's `ip saddr` admits. nft prints the set as it stores it:
    adjacent /32 elements merged into a prefix or a range (10.89.2.16/31, 10.89.2.17-10.89.2.19),
    so which form shows depends on the addresses the lab handed out."""
    match = re.search(r"ip saddr (\{ [^}]* \}|\S+)", rule)
    assert match, rule
    admitted = set()
    for element in match.group(1).strip("{} ").split(","):
        first, _, last = element.strip().partition("-")
        if last:
            low, high = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
            admitted.update(str(ipaddress.IPv4Address(n)) for n in range(low, high + 1))
        else:
            admitted.update(str(address) for address in ipaddress.IPv4Network(first))
    return admitted


def test_admitted_ipv4_reads_every_form_nft_prints():
    assert admitted_ipv4("ip saddr 10.0.0.16 tcp dport 9100 accept") == {"10.0.0.16"}
    assert admitted_ipv4("ip saddr { 10.0.0.16/31 } tcp dport 9100 accept") == {"10.0.0.16", "10.0.0.17"}
    assert admitted_ipv4("ip saddr { 10.0.0.17-10.0.0.19, 10.0.0.30 } tcp dport 9100 accept") == {
        "10.0.0.17", "10.0.0.18", "10.0.0.19", "10.0.0.30"}


def test_firewall_drop_in_is_loaded(host, addresses):
    with host.sudo():
        ruleset = host.check_output("nft list chain inet fleetforge input")
    rule = [line for line in ruleset.splitlines() if "tcp dport 9100 accept" in line]
    assert len(rule) == 1, ruleset
    assert admitted_ipv4(rule[0]) == {addresses[m] for m in MONITORING}, rule[0]


def test_only_monitoring_hosts_reach_the_exporters(host, name, addresses):
    others = sorted(set(addresses) - {name})
    for other in others:
        probe = host.run("timeout 5 bash -c 'echo > /dev/tcp/%s/9100'", addresses[other])
        if name in MONITORING:
            assert probe.rc == 0, f"{name} cannot reach {other}:9100"
        else:
            assert probe.rc != 0, f"{name} (not a monitoring host) reached {other}:9100"


# ------------------------------------------------------------------ Prometheus on the monitoring host
def query(host, address, path):
    """The API of the Prometheus at `address` (each monitoring host asks its own)."""
    rc, code, body = fetch(host, f"https://{address}:9090{path}", CA, ADMIN_AUTH)
    assert (rc, code) == (0, "200"), body
    return json.loads(body)["data"]


def test_every_inventory_host_is_up_in_prometheus(host, name, addresses):
    if name not in MONITORING:
        pytest.skip("Prometheus runs on the monitoring host")
    deadline = time.time() + 90
    while True:
        result = query(host, addresses[name], "/api/v1/query?query=up%7Bjob%3D%22node%22%7D")["result"]
        up = {series["metric"]["instance"]: series["value"][1] for series in result}
        if up == dict.fromkeys(addresses, "1") or time.time() > deadline:
            break
        time.sleep(5)
    assert up == dict.fromkeys(addresses, "1")


def test_targets_carry_inventory_labels(host, name, addresses):
    if name not in MONITORING:
        pytest.skip("Prometheus runs on the monitoring host")
    active = query(host, addresses[name], "/api/v1/targets")["activeTargets"]
    targets = {t["labels"]["instance"]: t for t in active}
    assert set(targets) == set(addresses)
    assert targets["mon"]["labels"]["region"] == "lab-west"
    assert "region" not in targets["mon13"]["labels"]
    assert targets["ex12"]["labels"]["region"] == "lab-east"
    assert "region" not in targets["ex13"]["labels"]
    assert ",monitoring," in targets["mon"]["labels"]["groups"]
    assert ",exporters," in targets["ex13"]["labels"]["groups"]
    assert {t["labels"]["role"] for t in targets.values()} == {"lab"}
    assert targets["ex12"]["scrapeUrl"] == f"https://{addresses['ex12']}:9100/metrics"


def test_prometheus_api_needs_the_password(host, name, addresses):
    if name not in MONITORING:
        pytest.skip("Prometheus runs on the monitoring host")
    url = f"https://{addresses[name]}:9090/api/v1/query?query=up"
    assert fetch(host, url, CA)[1] == "401"


def test_alert_rules_are_loaded_and_promtool_accepts_everything(host, name, addresses):
    if name not in MONITORING:
        pytest.skip("Prometheus runs on the monitoring host")
    rules = {r["name"] for g in query(host, addresses[name], "/api/v1/rules")["groups"] for r in g["rules"]}
    assert rules == {"FleetHostDown", "FleetDiskFilling", "FleetClockSkew", "FleetSystemdUnitFailed"}
    with host.sudo():
        host.run_test("promtool check config /etc/prometheus/prometheus.yml")
        host.run_test("promtool check rules /etc/prometheus/rules/fleetforge.yml")
        host.run_test("promtool check web-config /etc/prometheus/web.yml")


RULES_TEST = """\
rule_files: [/etc/prometheus/rules/fleetforge.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="node",instance="ex12"}'
        values: '0x40'
      - series: 'up{job="node",instance="ex13"}'
        values: '1x40'
      - series: 'node_systemd_unit_state{instance="ex12",name="lab.service",state="failed"}'
        values: '1x40'
      - series: 'node_timex_offset_seconds{instance="ex12"}'
        values: '0.2x40'
      - series: 'node_filesystem_avail_bytes{instance="ex12",mountpoint="/",fstype="ext4"}'
        values: '5x40'
      - series: 'node_filesystem_size_bytes{instance="ex12",mountpoint="/",fstype="ext4"}'
        values: '100x40'
      - series: 'node_filesystem_readonly{instance="ex12",mountpoint="/",fstype="ext4"}'
        values: '0x40'
    alert_rule_test:
      - eval_time: 3m
        alertname: FleetHostDown
        exp_alerts: []
      - eval_time: 6m
        alertname: FleetHostDown
        exp_alerts:
          - exp_labels: {severity: critical, job: node, instance: ex12}
            exp_annotations:
              summary: "ex12: node_exporter does not answer"
              description: "Scrapes of ex12 have failed for 5m: host down, exporter stopped or port filtered."
      - eval_time: 6m
        alertname: FleetSystemdUnitFailed
        exp_alerts:
          - exp_labels: {severity: warning, instance: ex12, name: lab.service, state: failed}
            exp_annotations:
              summary: "ex12: systemd unit lab.service failed"
              description: "Needs node_exporter's systemd collector
                (node_exporter_collectors_enabled: [systemd])."
      - eval_time: 11m
        alertname: FleetClockSkew
        exp_alerts:
          - exp_labels: {severity: warning, instance: ex12}
            exp_annotations:
              summary: "ex12: clock is off or not synchronised"
              description: "Clock offset beyond 0.05 s, or the kernel reports the clock unsynchronised."
      - eval_time: 31m
        alertname: FleetDiskFilling
        exp_alerts:
          - exp_labels: {severity: warning, instance: ex12, mountpoint: /, fstype: ext4}
            exp_annotations:
              summary: "ex12: / is filling up"
              description: "Under 10.0% free, or full within 24 hours at the rate of the last 6 hours."
"""


def test_alert_rules_fire_on_the_conditions_they_name(host, name):
    """promtool's rule unit tests on synthetic series: each alert fires when (and only when) it should."""
    if name not in MONITORING:
        pytest.skip("the rules live on the monitoring host")
    with host.sudo():
        host.run_test("printf '%%s' %s > /tmp/fleetforge-rules-test.yml", RULES_TEST)
        result = host.run("promtool test rules /tmp/fleetforge-rules-test.yml")
    assert result.rc == 0, result.stdout + result.stderr
