"""JUnit XML rendered from the run record, for CI dashboards.

Written from the record rather than by pytest's ``--junitxml`` so that it agrees with the sign-off report:
a flaky check is a ``<failure type="flaky">``, an environment limitation a ``<skipped
type="environment-limitation">``, and the verdict is a suite property.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from reports.masking import mask_text, mask_value
from reports.model import RunRecord, Status, TestResult

# XML 1.0 forbids most control characters; ANSI colour codes in a traceback would make the file unreadable.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
MAX_TEXT = 20000


def _clean(text: str | None, limit: int = MAX_TEXT) -> str:
    text = mask_text(text or "")
    text = _ILLEGAL_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[:limit] + "\n…(truncated)"


def _names(nodeid: str) -> tuple[str, str]:
    """``suites/db/test_x.py::TestA::test_b[p]`` -> (``suites.db.test_x.TestA``, ``test_b[p]``)."""
    parts = nodeid.split("::")
    path = parts[0]
    if path.endswith(".py"):
        path = path[:-3]
    classname = ".".join([path.replace("/", ".").replace("\\", "."), *parts[1:-1]])
    return classname, parts[-1] if len(parts) > 1 else parts[0]


def _prop(parent: ET.Element, name: str, value: object) -> None:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    ET.SubElement(parent, "property", name=name, value=_clean(text, 2000))


def _testcase(suite: ET.Element, test: TestResult) -> None:
    classname, name = _names(test.nodeid)
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{test.duration:.3f}")
    props = ET.SubElement(case, "properties")
    _prop(props, "status", test.status.value)
    if test.requirement_id:
        _prop(props, "requirement_id", test.requirement_id)
    if test.requirement:
        _prop(props, "requirement", test.requirement)
    if test.area:
        _prop(props, "area", test.area)
    if len(test.attempts) > 1:
        _prop(props, "attempts", ",".join(a.status.value for a in test.attempts))
    for key, value in mask_value(test.evidence).items():
        _prop(props, f"evidence.{key}", value)
    for timeline in test.timelines:
        _prop(props, f"timeline.{timeline}", f"{len(test.timelines[timeline])} points")
    for attachment in test.attachments:
        _prop(props, f"attachment.{attachment.label}", attachment.path)

    message = _clean(test.message, 1000)
    body = _clean(test.longrepr or test.message)
    status = test.status
    if status is Status.FAILED:
        ET.SubElement(case, "failure", message=message, type="failure").text = body
    elif status is Status.FLAKY:
        ET.SubElement(case, "failure", message=message, type="flaky").text = body
    elif status is Status.XPASSED:
        ET.SubElement(case, "failure", message=message or "unexpectedly passed", type="xpass").text = body
    elif status is Status.ERROR:
        ET.SubElement(case, "error", message=message, type="error").text = body
    elif status is not Status.PASSED:
        kinds = {
            Status.INCOMPLETE: "environment-limitation",
            Status.SKIPPED: "skipped",
            Status.XFAILED: "xfail",
            Status.UNRUN: "not-run",
            Status.DESELECTED: "deselected",
        }
        reason = test.skip_reason or {Status.UNRUN: "not run", Status.DESELECTED: "deselected"}.get(status, "")
        ET.SubElement(case, "skipped", message=_clean(reason, 1000), type=kinds[status])


def render(record: RunRecord) -> str:
    tests = record.tests
    failures = sum(t.status in (Status.FAILED, Status.FLAKY, Status.XPASSED) for t in tests)
    errors = sum(t.status is Status.ERROR for t in tests) + len(record.collection_errors) + len(record.session_errors)
    skipped = sum(
        t.status not in (Status.PASSED, Status.FAILED, Status.FLAKY, Status.XPASSED, Status.ERROR) for t in tests
    )
    counts = {
        "tests": str(len(tests) + len(record.collection_errors) + len(record.session_errors)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{record.duration:.3f}",
    }
    root = ET.Element("testsuites", {"name": "geocube-acceptance", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "geocube-acceptance", "timestamp": record.started_at, **counts})
    props = ET.SubElement(suite, "properties")
    _prop(props, "run_id", record.run_id)
    _prop(props, "verdict", record.verdict.label)
    for reason in record.verdict_reasons:
        _prop(props, "verdict_reason", reason)
    inventory = mask_value(record.inventory)
    if inventory.get("profile") is not None:
        _prop(props, "profile", inventory["profile"])
    suite_info = inventory.get("suite")
    if isinstance(suite_info, dict):
        for key in ("version", "commit"):
            if suite_info.get(key) is not None:
                _prop(props, f"suite_{key}", suite_info[key])
    kube = inventory.get("kubernetes")
    if isinstance(kube, dict) and kube.get("version") is not None:
        _prop(props, "kubernetes_version", kube["version"])
    for signoff in record.signoffs:
        _prop(props, "signoff", f"{signoff.approver} at {signoff.timestamp}: {signoff.comment}")
    for session_error in record.session_errors:
        # A CI dashboard shows the reason the run stopped as an error case of its own, first.
        case = ET.SubElement(
            suite, "testcase", classname="geocube-acceptance.session", name=session_error.phase, time="0.000"
        )
        ET.SubElement(
            case,
            "error",
            message=_clean(session_error.message.strip().splitlines()[0], 1000)
            if session_error.message.strip()
            else "failed",
            type="session",
        ).text = _clean(session_error.message)
    for phase in record.phases:
        _prop(props, f"phase.{phase.name}", f"{phase.status} in {phase.duration:.1f}s")
    for defect in record.known_defects:
        _prop(props, f"known_defect.{defect.id}", "observed" if defect.observed else "expected but not observed")
    for error in record.collection_errors:
        classname, name = _names(error.nodeid)
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0.000")
        ET.SubElement(case, "error", message="collection error", type="collection").text = _clean(error.message)
    for test in tests:
        _testcase(suite, test)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
