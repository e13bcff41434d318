# Copyright: (c) 2026, fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compliance evidence: waivers, summaries, and JSON / JUnit XML reports.

Pure functions over the control records that the hardening roles publish
(``linux_hardening_controls``, ``ssh_hardening_controls``)::

    {id, cis: {benchmark: number}, title, level: 1|2,
     status: pass|fixed|fail|not_applicable, evidence}

and over the waivers of the inventory (``fleet_compliance_waivers``)::

    [{id, reason, expires: YYYY-MM-DD}]

A waiver applies up to and including its expiry day; after that the control keeps the status its
check gave and the report lists the waiver as expired.
"""
from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

STATUSES = ("pass", "fixed", "fail", "not_applicable")
REPORT_STATUSES = STATUSES + ("waived",)
WAIVERS_VAR = "fleet_compliance_waivers"
REPORT_FORMAT = 1


# ------------------------------------------------------------------ input checks
def _as_date(value, what):
    """A date from a YYYY-MM-DD string, a date or a datetime (YAML may give any of them)."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.datetime.strptime(to_text(value).strip(), "%Y-%m-%d").date()
    except ValueError:
        raise AnsibleFilterError(f"{what} must be a date written YYYY-MM-DD, got {value!r}") from None


def _check_control(control, index):
    if not isinstance(control, dict):
        raise AnsibleFilterError(f"control #{index} must be a dict, got {type(control).__name__}")
    cid = control.get("id")
    if not isinstance(cid, str) or not cid:
        raise AnsibleFilterError(f"control #{index} has no id")
    if control.get("status") not in STATUSES:
        raise AnsibleFilterError(
            f"control {cid}: status must be one of {', '.join(STATUSES)}, got {control.get('status')!r}")
    if control.get("level") not in (1, 2, "1", "2"):
        raise AnsibleFilterError(f"control {cid}: level must be 1 or 2, got {control.get('level')!r}")
    if not isinstance(control.get("cis", {}), dict):
        raise AnsibleFilterError(f"control {cid}: cis must be a dict of benchmark to number")


def _check_controls(controls):
    if not isinstance(controls, list):
        raise AnsibleFilterError(f"controls must be a list, got {type(controls).__name__}")
    seen = set()
    for index, control in enumerate(controls):
        _check_control(control, index)
        if control["id"] in seen:
            raise AnsibleFilterError(f"control {control['id']} is reported twice")
        seen.add(control["id"])


def _check_waivers(waivers):
    """Return {id: (reason, expires date)}; any malformed entry names the variable."""
    if waivers is None:
        return {}
    if not isinstance(waivers, list):
        raise AnsibleFilterError(f"{WAIVERS_VAR} must be a list, got {type(waivers).__name__}")
    parsed = {}
    for index, waiver in enumerate(waivers):
        where = f"{WAIVERS_VAR}[{index}]"
        if not isinstance(waiver, dict):
            raise AnsibleFilterError(f"{where} must be a dict with id, reason and expires")
        missing = [key for key in ("id", "reason", "expires") if not waiver.get(key)]
        if missing:
            raise AnsibleFilterError(f"{where} lacks {', '.join(missing)}")
        unknown = sorted(set(waiver) - {"id", "reason", "expires"})
        if unknown:
            raise AnsibleFilterError(f"{where} has unknown keys {', '.join(unknown)}")
        cid = to_text(waiver["id"])
        if cid in parsed:
            raise AnsibleFilterError(f"{where} waives {cid} a second time")
        parsed[cid] = (to_text(waiver["reason"]), _as_date(waiver["expires"], f"{where}.expires"))
    return parsed


# ------------------------------------------------------------------ filters
def compliance_waive(controls, waivers=None, today=None):
    """Mark controls covered by a waiver that has not expired as ``waived``.

    Every waived control keeps its check's result in ``checked_status``; every control that a
    waiver names carries ``waiver: {reason, expires, expired}``, expired ones included.
    """
    _check_controls(controls)
    parsed = _check_waivers(waivers)
    day = datetime.date.today() if today is None else _as_date(today, "today")
    result = []
    for original in controls:
        control = dict(original)
        if control["id"] in parsed:
            reason, expires = parsed[control["id"]]
            expired = expires < day
            control["waiver"] = {"reason": reason, "expires": expires.isoformat(), "expired": expired}
            if not expired:
                control["checked_status"] = control["status"]
                control["status"] = "waived"
        result.append(control)
    return result


def compliance_summary(controls):
    """Counts per status, the total, and the share of checked controls that pass (percent)."""
    if not isinstance(controls, list):
        raise AnsibleFilterError(f"controls must be a list, got {type(controls).__name__}")
    counts = dict.fromkeys(REPORT_STATUSES, 0)
    for index, control in enumerate(controls):
        status = control.get("status") if isinstance(control, dict) else None
        if status not in counts:
            raise AnsibleFilterError(f"control #{index}: unknown status {status!r}")
        counts[status] += 1
    good = counts["pass"] + counts["fixed"]
    checked = good + counts["fail"]
    counts["total"] = len(controls)
    counts["score"] = round(100.0 * good / checked, 1) if checked else 100.0
    return counts


def _as_audited(control):
    """In audit mode nothing is fixed: a control a role calls ``fixed`` during a check-mode run
    was not in effect and would have been changed, so it fails. (``ansible_check_mode`` follows
    only ``--check``, not a play's ``check_mode: true``, so a role cannot always tell.)"""
    control = dict(control)
    if control.get("status") == "fixed":
        control["status"] = "fail"
        evidence = control.get("evidence", "")
        control["evidence"] = f"not in effect; a hardening run would change it ({evidence})"
    if control.get("checked_status") == "fixed":
        control["checked_status"] = "fail"
    return control


def compliance_report(controls, host, waivers=None, generated=None, mode="audit"):
    """The per-host report: metadata, summary, controls sorted by id, and the waivers that did not
    apply (expired, or naming no enabled control). In ``audit`` mode (check mode) a ``fixed``
    control is reported as ``fail``: nothing was changed."""
    if not isinstance(controls, list):
        raise AnsibleFilterError(f"controls must be a list, got {type(controls).__name__}")
    if mode not in ("audit", "harden"):
        raise AnsibleFilterError(f"mode must be audit or harden, got {mode!r}")
    if mode == "audit":
        controls = [_as_audited(c) if isinstance(c, dict) else c for c in controls]
    summary = compliance_summary(controls)
    parsed = _check_waivers(waivers)
    ids = {c.get("id") for c in controls}
    expired = sorted(c["id"] for c in controls if c.get("waiver", {}).get("expired"))
    unmatched = sorted(cid for cid in parsed if cid not in ids)
    return {
        "format": REPORT_FORMAT,
        "host": to_text(host),
        "generated": to_text(generated) if generated is not None else None,
        "mode": mode,
        "summary": summary,
        "controls": sorted(controls, key=lambda c: c["id"]),
        "waivers": {"expired": expired, "unmatched": unmatched},
    }


def _cis_text(cis):
    return ", ".join(f"{bench} {number}" for bench, number in sorted((cis or {}).items())) or "none"


def compliance_junit(report):
    """A JUnit XML document for a report from ``compliance_report``: one testcase per control,
    a failure for ``fail``, skipped for ``not_applicable`` and ``waived`` with the reason."""
    if not isinstance(report, dict) or "controls" not in report or "host" not in report:
        raise AnsibleFilterError("compliance_junit expects the dict made by compliance_report")
    host = report["host"]
    summary = report.get("summary") or compliance_summary(report["controls"])
    suites = ET.Element("testsuites", name="fleetforge.fleet compliance")
    suite = ET.SubElement(suites, "testsuite", {
        "name": f"compliance.{host}",
        "hostname": host,
        "tests": str(summary["total"]),
        "failures": str(summary["fail"]),
        "errors": "0",
        "skipped": str(summary["not_applicable"] + summary["waived"]),
    })
    if report.get("generated"):
        suite.set("timestamp", report["generated"])
    for control in report["controls"]:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{host}.level{control.get('level')}",
            "name": f"{control['id']}: {control.get('title', '')}",
        })
        evidence = to_text(control.get("evidence", ""))
        status = control["status"]
        if status == "fail":
            failure = ET.SubElement(case, "failure", message=evidence, type="control_failed")
            failure.text = evidence
        elif status == "not_applicable":
            ET.SubElement(case, "skipped", message=f"not applicable: {evidence}")
        elif status == "waived":
            waiver = control.get("waiver", {})
            ET.SubElement(case, "skipped", message=(
                f"waived until {waiver.get('expires')}: {waiver.get('reason')} "
                f"(check result: {control.get('checked_status')})"))
        lines = [f"status: {status}", f"CIS: {_cis_text(control.get('cis'))}",
                 f"level: {control.get('level')}", f"evidence: {evidence}"]
        if control.get("waiver", {}).get("expired"):
            lines.append(f"waiver expired on {control['waiver']['expires']}: {control['waiver']['reason']}")
        ET.SubElement(case, "system-out").text = "\n".join(lines)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


class FilterModule:
    """Compliance evidence filters."""

    def filters(self):
        return {
            "compliance_waive": compliance_waive,
            "compliance_summary": compliance_summary,
            "compliance_report": compliance_report,
            "compliance_junit": compliance_junit,
        }
