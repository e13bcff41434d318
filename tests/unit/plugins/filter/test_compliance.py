"""Compliance filters: waivers, summary, JSON report, JUnit XML."""
import datetime
import json
import xml.etree.ElementTree as ET

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetforge.fleet.plugins.filter import compliance as c


def control(cid, status="pass", level=1, **extra):
    record = {"id": cid, "cis": {"debian12": "1.5.1"}, "title": f"Title of {cid}", "level": level,
              "status": status, "evidence": f"evidence of {cid}"}
    record.update(extra)
    return record


@pytest.fixture
def controls():
    return [control("core_dumps", "pass"), control("sysctl_kptr", "fail"),
            control("kmod_cramfs", "not_applicable"), control("sudo_use_pty", "fixed", level=2)]


TODAY = "2026-11-28"


# ------------------------------------------------------------------ compliance_waive
@pytest.mark.parametrize("expires, waived", [
    ("2026-11-29", True),
    ("2026-11-28", True),     # applies through its expiry day
    ("2026-11-27", False),    # expired yesterday
    (datetime.date(2027, 1, 1), True),   # YAML gives a date for an unquoted value
    (datetime.datetime(2026, 1, 1, 12, 0), False),
])
def test_waiver_applies_until_its_expiry_day(controls, expires, waived):
    waivers = [{"id": "sysctl_kptr", "reason": "vendor agent needs it", "expires": expires}]
    out = {x["id"]: x for x in c.compliance_waive(controls, waivers, TODAY)}
    kptr = out["sysctl_kptr"]
    assert kptr["status"] == ("waived" if waived else "fail")
    assert kptr["waiver"]["expired"] is (not waived)
    assert kptr["waiver"]["reason"] == "vendor agent needs it"
    if waived:
        assert kptr["checked_status"] == "fail"
    else:
        assert "checked_status" not in kptr
    # the others are untouched
    assert out["core_dumps"] == controls[0]


def test_waive_does_not_change_its_input(controls):
    before = json.dumps(controls, sort_keys=True)
    c.compliance_waive(controls, [{"id": "core_dumps", "reason": "r", "expires": "2099-01-01"}], TODAY)
    assert json.dumps(controls, sort_keys=True) == before


def test_waive_without_waivers_returns_the_controls(controls):
    assert c.compliance_waive(controls, None, TODAY) == controls
    assert c.compliance_waive(controls, [], TODAY) == controls


def test_waive_defaults_to_the_controller_date(controls):
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    out = c.compliance_waive(controls, [{"id": "sysctl_kptr", "reason": "r", "expires": tomorrow}])
    assert out[1]["status"] == "waived"


@pytest.mark.parametrize("waivers, message", [
    ({"id": "x"}, "fleet_compliance_waivers must be a list"),
    (["x"], r"fleet_compliance_waivers\[0\] must be a dict"),
    ([{"id": "x", "reason": "r"}], r"fleet_compliance_waivers\[0\] lacks expires"),
    ([{"id": "x", "expires": "2030-01-01"}], "lacks reason"),
    ([{"id": "x", "reason": "r", "expires": "01/02/2030"}],
     r"\[0\]\.expires must be a date written YYYY-MM-DD"),
    ([{"id": "x", "reason": "r", "expires": "2030-01-01", "owner": "me"}], "unknown keys owner"),
    ([{"id": "x", "reason": "r", "expires": "2030-01-01"},
      {"id": "x", "reason": "again", "expires": "2031-01-01"}], r"\[1\] waives x a second time"),
])
def test_bad_waivers_fail_naming_the_variable(controls, waivers, message):
    with pytest.raises(AnsibleFilterError, match=message):
        c.compliance_waive(controls, waivers, TODAY)


@pytest.mark.parametrize("bad, message", [
    ({"id": "a", "status": "ok", "level": 1}, "control a: status must be one of"),
    ({"id": "a", "status": "pass", "level": 3}, "control a: level must be 1 or 2"),
    ({"status": "pass", "level": 1}, "control #0 has no id"),
    ({"id": "a", "status": "pass", "level": 1, "cis": "1.1"}, "cis must be a dict"),
    ("a", "control #0 must be a dict"),
])
def test_malformed_controls_are_refused(bad, message):
    with pytest.raises(AnsibleFilterError, match=message):
        c.compliance_waive([bad], [], TODAY)


def test_a_control_reported_twice_is_refused():
    with pytest.raises(AnsibleFilterError, match="core_dumps is reported twice"):
        c.compliance_waive([control("core_dumps"), control("core_dumps", "fail")], [], TODAY)


# ------------------------------------------------------------------ compliance_summary
@pytest.mark.parametrize("statuses, expected", [
    ([], {"total": 0, "score": 100.0}),
    (["pass", "fail"], {"pass": 1, "fail": 1, "total": 2, "score": 50.0}),
    (["pass", "fixed", "fail", "not_applicable", "waived"],
     {"pass": 1, "fixed": 1, "fail": 1, "not_applicable": 1, "waived": 1, "total": 5, "score": 66.7}),
    (["not_applicable", "waived"], {"not_applicable": 1, "waived": 1, "total": 2, "score": 100.0}),
])
def test_summary_counts_every_status(statuses, expected):
    summary = c.compliance_summary([{"id": str(i), "status": s} for i, s in enumerate(statuses)])
    full = dict.fromkeys(("pass", "fixed", "fail", "not_applicable", "waived"), 0)
    full.update(expected)
    assert summary == full


def test_summary_refuses_unknown_status():
    with pytest.raises(AnsibleFilterError, match="unknown status 'broken'"):
        c.compliance_summary([{"id": "a", "status": "broken"}])


# ------------------------------------------------------------------ compliance_report
def test_report_lists_every_control_and_the_waivers_that_did_not_apply(controls):
    waivers = [{"id": "sysctl_kptr", "reason": "agent", "expires": "2020-01-01"},
               {"id": "core_dumps", "reason": "debugging", "expires": "2030-01-01"},
               {"id": "no_such_control", "reason": "typo", "expires": "2030-01-01"}]
    waived = c.compliance_waive(controls, waivers, TODAY)
    report = c.compliance_report(waived, "web1", waivers=waivers, generated="2026-11-28T10:00:00Z")
    assert report["host"] == "web1" and report["mode"] == "audit"
    assert [x["id"] for x in report["controls"]] == sorted(x["id"] for x in controls)
    assert report["summary"]["waived"] == 1 and report["summary"]["fail"] == 2  # fixed -> fail
    assert report["waivers"] == {"expired": ["sysctl_kptr"], "unmatched": ["no_such_control"]}
    # it is what the playbook writes: it must survive a JSON round trip unchanged
    assert json.loads(json.dumps(report)) == report


def test_audit_mode_reports_fixed_as_failing(controls):
    """In check mode nothing is fixed: what a role calls fixed was not in effect."""
    waivers = [{"id": "sudo_use_pty", "reason": "r", "expires": "2030-01-01"}]
    audit = c.compliance_report(controls, "web1", mode="audit")
    pty = next(x for x in audit["controls"] if x["id"] == "sudo_use_pty")
    assert pty["status"] == "fail"
    assert pty["evidence"] == "not in effect; a hardening run would change it (evidence of sudo_use_pty)"
    assert audit["summary"]["fixed"] == 0 and audit["summary"]["fail"] == 2
    waived = c.compliance_report(c.compliance_waive(controls, waivers, TODAY), "web1", mode="audit")
    assert next(x for x in waived["controls"] if x["id"] == "sudo_use_pty")["checked_status"] == "fail"
    harden = c.compliance_report(controls, "web1", mode="harden")
    assert next(x for x in harden["controls"] if x["id"] == "sudo_use_pty")["status"] == "fixed"
    assert controls[3]["status"] == "fixed"  # the input is left alone
    with pytest.raises(AnsibleFilterError, match="mode must be audit or harden"):
        c.compliance_report(controls, "web1", mode="check")


# ------------------------------------------------------------------ compliance_junit
def parse_junit(controls, waivers=()):
    report = c.compliance_report(c.compliance_waive(controls, list(waivers), TODAY), "web1",
                                 generated="2026-11-28T10:00:00Z", mode="harden")
    text = c.compliance_junit(report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.split("\n", 1)[1])
    return root, {case.get("name").split(":")[0]: case for case in root.iter("testcase")}


def test_junit_has_one_testcase_per_control_with_the_right_outcome(controls):
    root, cases = parse_junit(controls, [{"id": "core_dumps", "reason": "debug <box>",
                                          "expires": "2030-01-01"}])
    suite = root.find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("skipped") == "2"
    assert suite.get("hostname") == "web1" and suite.get("timestamp") == "2026-11-28T10:00:00Z"
    assert set(cases) == {"core_dumps", "sysctl_kptr", "kmod_cramfs", "sudo_use_pty"}
    assert cases["sysctl_kptr"].find("failure").get("message") == "evidence of sysctl_kptr"
    assert cases["kmod_cramfs"].find("skipped").get("message") == "not applicable: evidence of kmod_cramfs"
    waived = cases["core_dumps"].find("skipped").get("message")
    assert waived == "waived until 2030-01-01: debug <box> (check result: pass)"
    # passing and fixed controls are plain passing testcases
    assert list(cases["sudo_use_pty"]) == [cases["sudo_use_pty"].find("system-out")]
    out = cases["sudo_use_pty"].find("system-out").text
    assert "status: fixed" in out and "CIS: debian12 1.5.1" in out and "level: 2" in out


def test_junit_mentions_an_expired_waiver(controls):
    cases = parse_junit(controls, [{"id": "sysctl_kptr", "reason": "old", "expires": "2020-01-01"}])[1]
    assert cases["sysctl_kptr"].find("failure") is not None
    assert "waiver expired on 2020-01-01: old" in cases["sysctl_kptr"].find("system-out").text


def test_junit_refuses_something_that_is_not_a_report(controls):
    with pytest.raises(AnsibleFilterError, match="expects the dict made by compliance_report"):
        c.compliance_junit(controls)


def test_filters_are_registered():
    assert set(c.FilterModule().filters()) == {"compliance_waive", "compliance_summary",
                                               "compliance_report", "compliance_junit"}
