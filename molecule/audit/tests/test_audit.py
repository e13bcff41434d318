"""playbooks/audit.yml on fresh hosts: nothing written there, reports on the controller."""
import json
import os
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parent.parent
REPO = SCENARIO.parent.parent
SNAPSHOT = (SCENARIO / "snapshot.sh").read_text()
STATUSES = {"pass", "fail", "not_applicable", "waived"}  # check mode: nothing is "fixed"
WAIVERS = {w["id"]: w for w in yaml.safe_load((SCENARIO / "molecule.yml").read_text())
           ["provisioner"]["inventory"]["group_vars"]["all"]["fleet_compliance_waivers"]}


PLAYBOOK = REPO / "playbooks" / "audit.yml"


@pytest.fixture(scope="session")
def audit(run_playbook):
    """playbooks/audit.yml on every host: first without --check (refused before any change),
    then with --check, as an AWX job of type Check runs it."""
    refused = run_playbook(PLAYBOOK)
    audited = run_playbook(PLAYBOOK, check=True)
    assert audited.returncode == 0, audited.stdout[-4000:] + audited.stderr[-2000:]
    return refused, audited


@pytest.fixture(autouse=True)
def _audited(audit):
    """Every test here looks at hosts and reports after the audit runs."""


def snapshot(host, what):
    with host.sudo():
        cmd = host.run(f"bash -c {shlex.quote(SNAPSHOT)} snapshot {what}")
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def report_path(host, suffix):
    return (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"
            / f"{host.backend.get_hostname()}{suffix}")


@pytest.fixture
def report(host):
    return json.loads(report_path(host, ".json").read_text())


@pytest.fixture
def junit(host):
    return ET.parse(report_path(host, ".junit.xml")).getroot()


def test_audit_without_check_is_refused_before_the_roles(audit):
    refused = audit[0]
    assert refused.returncode != 0
    assert "playbooks/audit.yml must run with --check" in refused.text
    assert "fleetforge.fleet.linux_hardening" not in refused.stdout


# ------------------------------------------------------------------ nothing written on the host
def test_nothing_under_etc_changed(host):
    before = host.file("/var/tmp/fleet-audit-test/etc.before").content_string.strip().splitlines()
    after = snapshot(host, "etc").strip().splitlines()
    assert len(after) > 100  # the listing really covers /etc
    assert sorted(set(before) ^ set(after)) == []


def test_no_directory_created_or_removed(host):
    before = set(host.file("/var/tmp/fleet-audit-test/dirs.before").content_string.splitlines())
    after = set(snapshot(host, "dirs").splitlines())
    assert len(after) > 1000  # the listing really covers the file system
    assert sorted(after - before) == [] and sorted(before - after) == []


def test_no_file_written_anywhere_since_the_audit_started(host):
    written = snapshot(host, "since").splitlines()
    assert written == [], f"written on the host during the audit: {written}"


def test_the_change_detector_sees_a_write(host):
    """The same detection, after this test writes one file: an empty result above is meaningful."""
    with host.sudo():
        assert host.run("touch /root/fleet-audit-canary").rc == 0
    try:
        written = snapshot(host, "since").splitlines()
        assert written == ["/root/fleet-audit-canary"], written
    finally:
        with host.sudo():
            host.run("rm -f /root/fleet-audit-canary")


# ------------------------------------------------------------------ the reports
def test_json_report_lists_controls_with_evidence(host, report):
    assert report["host"] == host.backend.get_hostname() and report["mode"] == "audit"
    assert report["controls"], "no controls in the report"
    for control in report["controls"]:
        assert control["status"] in STATUSES, control
        assert control["title"] and isinstance(control["evidence"], str), control
        assert control["level"] in (1, 2), control
    summary = report["summary"]
    assert summary["total"] == len(report["controls"])
    assert sum(summary[s] for s in STATUSES) == summary["total"] and summary["fixed"] == 0
    # a fresh host fails controls: that they still fail is what "nothing was fixed" looks like
    assert summary["fail"] > 0


def catalog_ids(role, key, prefix="", level=1, profile="generic"):
    data = yaml.safe_load((REPO / "roles" / role / "vars" / "main.yml").read_text())
    return {prefix + c["id"] for c in data[key]
            if int(c.get("level", 1)) <= level and profile in c.get("profiles", [profile])}


def test_every_enabled_control_is_reported(report):
    """The roles' control catalogs at the defaults (level 1, generic profile) against the report:
    a control lost between a role and the report file shows here."""
    ids = {c["id"] for c in report["controls"]}
    expected = (catalog_ids("ssh_hardening", "__ssh_hardening_controls")
                | {"ssh-host-keys", "ssh-moduli", "ssh-admin-access"}
                | catalog_ids("linux_hardening", "__linux_hardening_sysctl_controls", "linux.")
                | catalog_ids("linux_hardening", "__linux_hardening_module_controls", "linux.")
                | catalog_ids("linux_hardening", "__linux_hardening_file_controls", "linux."))
    assert len(expected) > 50
    assert sorted(expected - ids) == []


def test_junit_report_matches_the_json_report(report, junit):
    cases = {case.get("name").split(": ", 1)[0]: case for case in junit.iter("testcase")}
    assert set(cases) == {c["id"] for c in report["controls"]}
    suite = junit.find("testsuite")
    assert int(suite.get("tests")) == report["summary"]["total"]
    assert int(suite.get("failures")) == report["summary"]["fail"]
    for control in report["controls"]:
        case = cases[control["id"]]
        assert (case.find("failure") is not None) == (control["status"] == "fail"), control["id"]
        assert (case.find("skipped") is not None) == (control["status"] in ("waived", "not_applicable"))


def test_a_current_waiver_shows_as_waived(report, junit):
    waiver = next(w for w in WAIVERS.values() if w["expires"] > "2026-12-31")
    control = next(c for c in report["controls"] if c["id"] == waiver["id"])
    assert control["status"] == "waived"
    assert control["checked_status"] in ("pass", "fail", "not_applicable")
    assert control["waiver"] == {"reason": waiver["reason"], "expires": waiver["expires"], "expired": False}
    case = next(c for c in junit.iter("testcase") if c.get("name").startswith(waiver["id"] + ": "))
    message = case.find("skipped").get("message")
    assert message.startswith(f"waived until {waiver['expires']}: {waiver['reason']}")


def test_an_expired_waiver_does_not_apply_and_is_reported(report):
    waiver = next(w for w in WAIVERS.values() if w["expires"] < "2026-01-01")
    control = next(c for c in report["controls"] if c["id"] == waiver["id"])
    assert control["status"] != "waived" and "checked_status" not in control
    assert control["waiver"]["expired"] is True
    assert report["waivers"]["expired"] == [waiver["id"]]
