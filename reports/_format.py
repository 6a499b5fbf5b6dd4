"""Formatting shared by the Markdown and HTML renderers (private)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reports.masking import mask_argv, mask_text, mask_value
from reports.model import RunRecord, Status, TestResult

STATUS_LABELS: dict[Status, str] = {
    Status.PASSED: "PASS",
    Status.FAILED: "FAIL",
    Status.ERROR: "ERROR",
    Status.FLAKY: "FLAKY",
    Status.INCOMPLETE: "INCOMPLETE",
    Status.SKIPPED: "SKIPPED",
    Status.XFAILED: "XFAIL",
    Status.XPASSED: "XPASS",
    Status.UNRUN: "NOT RUN",
    Status.DESELECTED: "DESELECTED",
}

NOT_REPORTED = "not reported"
SIGNOFF_HINT = "geocube-acceptance report RUN_DIR --approver NAME --comment TEXT"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def scalar(value: Any, limit: int = 120) -> str:
    """A one-line rendering of a JSON value, shortened to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_items(test: TestResult) -> list[tuple[str, str]]:
    """Masked (key, short value) pairs of a test's evidence, timelines and attachments summarised."""
    items = [(key, scalar(value)) for key, value in mask_value(test.evidence).items()]
    for name, points in test.timelines.items():
        pods = [p["pods"] for p in points if isinstance(p.get("pods"), int | float)]
        span = f"{points[-1]['t'] - points[0]['t']:.0f}s" if points else "0s"
        peak = f", pods {min(pods):g}→{max(pods):g}" if pods else ""
        items.append((f"timeline {name}", f"{len(points)} points over {span}{peak}"))
    if test.attachments:
        items.append(("diagnostics", f"{len(test.attachments)} file(s)"))
    return items


def sorted_tests(record: RunRecord) -> list[TestResult]:
    """Requirement checks first, by requirement id, then the others by node id."""
    return sorted(record.tests, key=lambda t: (t.requirement_id is None, t.requirement_id or "", t.nodeid))


def failures(record: RunRecord) -> list[TestResult]:
    shown = {Status.FAILED, Status.ERROR, Status.FLAKY, Status.XPASSED}
    return [t for t in sorted_tests(record) if t.status in shown]


def unverified(record: RunRecord) -> list[TestResult]:
    shown = {Status.INCOMPLETE, Status.SKIPPED, Status.XFAILED, Status.UNRUN}
    return [t for t in sorted_tests(record) if t.status in shown]


def coverage_rows(record: RunRecord) -> list[tuple[str, str, str, str]]:
    """(requirement id, area, impact, what this run did with it) per catalogue entry; empty without a catalogue."""
    ran = {t.requirement_id: t for t in record.tests if t.requirement_id}
    rows = []
    for requirement in record.catalogue or []:
        test = ran.get(requirement.id)
        if not requirement.applicable:
            state = f"not applicable: {requirement.not_applicable_because}"
        elif test is None:
            state = "NOT SELECTED (outside the paths given)"
        elif test.status is Status.DESELECTED and test.skip_reason:
            state = f"NOT RUN {test.skip_reason}"
        else:
            state = STATUS_LABELS[test.status]
        impact = requirement.impact or "-"
        if requirement.impact_why:
            impact += f": {requirement.impact_why}"
        rows.append((requirement.id, requirement.area, impact, state))
    return rows


def phases_summary(record: RunRecord) -> str:
    """``build 6m00s, deploy 9.3s`` for the run table: time spent outside the checks."""
    return (
        ", ".join(
            f"{p.name} {duration(p.duration)}{'' if p.status == 'passed' else ' (failed)'}" for p in record.phases
        )
        or "-"
    )


NO_CATALOGUE = "No requirement catalogue: this run cannot show that every requirement ran."


@dataclass
class Inventory:
    """The inventory split into the sections the report knows, each masked; ``None`` = not reported."""

    kubernetes_version: str | None
    nodes: list[dict[str, str]] | None
    images: list[dict[str, str]] | None
    parameters: dict[str, str] | None
    suite: dict[str, str] | None
    profile: str | None
    other: dict[str, str]


def inventory(record: RunRecord) -> Inventory:
    inv: dict[str, Any] = mask_value(record.inventory)
    known = {"kubernetes", "images", "parameters", "suite", "profile"}
    kube = inv.get("kubernetes")
    version: str | None = None
    nodes: list[dict[str, str]] | None = None
    if isinstance(kube, dict):
        version = None if kube.get("version") is None else str(kube["version"])
        raw_nodes = kube.get("nodes")
        if isinstance(raw_nodes, list):
            nodes = [
                {str(k): _inv(v) for k, v in n.items()} if isinstance(n, dict) else {"name": _inv(n)} for n in raw_nodes
            ]
    elif isinstance(kube, str):
        version = kube
    images: list[dict[str, str]] | None = None
    raw_images = inv.get("images")
    if isinstance(raw_images, list):
        images = [
            {str(k): _inv(v, 200) for k, v in i.items()} if isinstance(i, dict) else {"image": _inv(i, 200)}
            for i in raw_images
        ]
    elif isinstance(raw_images, dict):
        images = [
            {
                "name": str(k),
                **({str(a): _inv(b, 200) for a, b in v.items()} if isinstance(v, dict) else {"digest": _inv(v, 200)}),
            }
            for k, v in raw_images.items()
        ]
    params = inv.get("parameters")
    suite = inv.get("suite")
    profile = inv.get("profile")
    return Inventory(
        kubernetes_version=version,
        nodes=nodes,
        images=images,
        parameters={str(k): _inv(v) for k, v in params.items()} if isinstance(params, dict) else None,
        suite={str(k): _inv(v) for k, v in suite.items()} if isinstance(suite, dict) else None,
        profile=None if profile is None else scalar(profile),
        other={str(k): _inv(v, 300) for k, v in inv.items() if k not in known},
    )


def _inv(value: Any, limit: int = 120) -> str:
    return "unknown" if value is None else scalar(value, limit)


def masked(text: str | None) -> str:
    return "" if text is None else mask_text(text)


def command(record: RunRecord) -> str:
    return " ".join(mask_argv(record.command)) or "-"
