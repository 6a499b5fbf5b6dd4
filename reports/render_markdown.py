"""The Markdown report: the sign-off document as plain text, readable in a merge request or a terminal."""

from __future__ import annotations

import json
from urllib.parse import quote

from reports import _format as fmt
from reports.masking import mask_value
from reports.model import Attachment, RunRecord, TestResult, Verdict

MAX_LONGREPR = 6000
MAX_TIMELINE_ROWS = 40


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip() or "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def attachment_href(attachment: Attachment) -> str:
    """Relative link for a file copied into the run directory, ``file://`` URL otherwise."""
    if attachment.copied:
        return quote(attachment.path)
    return "file://" + quote(attachment.path)


def _fence(text: str) -> list[str]:
    fence = "```"
    while fence in text:
        fence += "`"
    return [fence, text, fence, ""]


def render(record: RunRecord) -> str:
    verdict, reasons = record.verdict, record.verdict_reasons
    inv = fmt.inventory(record)
    out: list[str] = [f"# Geocube acceptance run {record.run_id}", ""]
    marker = {
        Verdict.PASS: "✅",
        Verdict.PARTIAL: "◐",
        Verdict.INCOMPLETE: "⚠️",
        Verdict.FAIL: "❌",
        Verdict.ERROR: "⛔",
    }
    out += [f"## Verdict: {marker[verdict]} {verdict.label}", ""]
    out += [f"- {fmt.masked(r)}" for r in reasons] + [""]
    for stop in record.session_errors:
        out += [f"### The run stopped: {stop.phase} failed", "", *_fence(fmt.masked(stop.message)[:MAX_LONGREPR])]
    suite = inv.suite or {}
    out += _table(
        ["Run", "Value"],
        [
            ["Run id", record.run_id],
            ["Started", record.started_at],
            ["Finished", record.finished_at],
            ["Duration", fmt.duration(record.duration)],
            ["Outside the checks", fmt.phases_summary(record)],
            ["Profile", inv.profile or fmt.NOT_REPORTED],
            ["Suite version", suite.get("version", fmt.NOT_REPORTED)],
            ["Suite commit", suite.get("commit", fmt.NOT_REPORTED)],
            ["Exit status", str(record.exit_status) + (" (interrupted)" if record.interrupted else "")],
            ["Command", fmt.command(record)],
        ],
    )

    out += ["## Sign-off", ""]
    if record.signoffs:
        out += _table(
            ["Approver", "Time", "Verdict at sign-off", "Comment"],
            [[s.approver, s.timestamp, s.verdict.label, fmt.masked(s.comment)] for s in record.signoffs],
        )
    else:
        out += [
            f"Not signed off. To sign off, run `{fmt.SIGNOFF_HINT}` (RUN_DIR: the directory of this report).",
            "",
        ]

    summary = {k: v for k, v in record.summary().items() if v}
    out += ["## Summary", ""]
    out += _table(["Status", "Checks"], [[k, str(v)] for k, v in summary.items()] or [["none", "0"]])

    out += _phases(record)
    out += _coverage(record)
    out += _known_defects(record)
    out += _history(record)

    out += ["## Requirements", ""]
    rows = []
    for test in fmt.sorted_tests(record):
        evidence = "; ".join(f"{k}={v}" for k, v in fmt.evidence_items(test))
        rows.append(
            [
                test.requirement_id or "(none)",
                fmt.masked(test.requirement) or test.name,
                test.area or "-",
                fmt.STATUS_LABELS[test.status],
                fmt.duration(test.duration),
                evidence,
                f"`{test.nodeid}`",
            ]
        )
    out += _table(["Requirement", "Description", "Area", "Status", "Duration", "Evidence", "Test"], rows)

    if record.collection_errors:
        out += ["## Collection errors", ""]
        for error in record.collection_errors:
            out += [f"### `{error.nodeid}`", "", *_fence(fmt.masked(error.message)[:MAX_LONGREPR])]

    failing = fmt.failures(record)
    if failing:
        out += ["## Failures", ""]
        for test in failing:
            out += _failure(test)

    unverified = fmt.unverified(record)
    if unverified:
        out += ["## Not verified", ""]
        out += _table(
            ["Check", "Status", "Reason"],
            [
                [
                    test.requirement_id or f"`{test.nodeid}`",
                    fmt.STATUS_LABELS[test.status],
                    fmt.masked(test.skip_reason) or "-",
                ]
                for test in unverified
            ],
        )

    out += _evidence_details(record)
    out += _inventory(inv)
    return "\n".join(out).rstrip() + "\n"


def _phases(record: RunRecord) -> list[str]:
    if not record.phases:
        return []
    rows = [
        [
            p.name,
            p.status,
            fmt.duration(p.duration),
            p.started_at or "-",
            p.log or "-",
            f"`{p.during}`" if p.during else "-",
        ]
        for p in record.phases
    ]
    return [
        "## Phases outside the checks",
        "",
        "Their time is not part of any check's duration.",
        "",
        *_table(["Phase", "Status", "Duration", "Started", "Log", "Triggered by"], rows),
    ]


def _coverage(record: RunRecord) -> list[str]:
    out = ["## Coverage", ""]
    if record.catalogue is None:
        return [*out, fmt.NO_CATALOGUE, ""]
    rows = [list(row) for row in fmt.coverage_rows(record)]
    return [*out, *_table(["Requirement", "Area", "Impact", "In this run"], rows)]


def _known_defects(record: RunRecord) -> list[str]:
    if not record.known_defects:
        return []
    out = ["## Known defects observed", ""]
    for defect in record.known_defects:
        state = "observed" if defect.observed else "expected on this profile but NOT observed (fixed? review the entry)"
        out += [
            f"### {defect.id} — {state}",
            "",
            defect.title,
            "",
            f"- requirement: {defect.requirement_id} (`{defect.nodeid or '-'}`)",
            f"- affects: {defect.affects}",
            f"- reference: {defect.reference}",
            "",
        ]
        if defect.evidence:
            out += ["Evidence:", "", *_fence(fmt.masked(defect.evidence))]
        if defect.explanation:
            out += [defect.explanation, ""]
    return out


def _history(record: RunRecord) -> list[str]:
    diff = record.history
    out = ["## Changes since the previous comparable run", ""]
    if diff is None:
        return [*out, "No history recorded for this run.", ""]
    if diff.key:
        out += ["Comparable runs share: " + "; ".join(f"{k} {v}" for k, v in diff.key.items()), ""]
    if diff.incomparable_runs:
        out += [f"{diff.incomparable_runs} earlier run(s) of another cluster, profile or selection not compared.", ""]
    if diff.previous_run_id is None:
        out += ["First comparable run in this history.", ""]
    else:
        out += [f"Previous comparable run: {diff.previous_run_id} (verdict {diff.previous_verdict or '?'})", ""]
    for title, nodeids in (
        ("Newly failing", diff.newly_failing),
        ("Fixed", diff.fixed),
        ("Still failing", diff.still_failing),
        ("Flaky in this run", diff.flaky),
        ("New checks", diff.new_tests),
        ("Removed checks", diff.removed_tests),
        ("Slower than usual", diff.slower),
    ):
        if nodeids:
            out += [f"**{title}** ({len(nodeids)}):", *[f"- `{n}`" for n in nodeids], ""]
    trend_rows = []
    for nodeid, series in sorted(diff.durations.items()):
        if len(series) < 2:
            continue
        previous, current = series[-2], series[-1]
        change = f"{(current - previous) / previous * 100:+.0f}%" if previous > 0 else "-"
        trend_rows.append([f"`{nodeid}`", " → ".join(fmt.duration(s) for s in series), change])
    if trend_rows:
        out += ["### Duration trend (oldest → this run)", ""]
        out += _table(["Check", "Durations", "vs previous"], trend_rows)
    return out


def _failure(test: TestResult) -> list[str]:
    title = f"### {test.requirement_id or test.name} — {fmt.STATUS_LABELS[test.status]}"
    out = [title, "", f"Test: `{test.nodeid}`", ""]
    if test.message:
        out += [f"**{fmt.masked(test.message).splitlines()[0] if test.message.strip() else ''}**", ""]
    if len(test.attempts) > 1:
        out += [
            "Attempts: " + ", ".join(f"#{i} {fmt.STATUS_LABELS[a.status]}" for i, a in enumerate(test.attempts, 1)),
            "",
        ]
    if test.longrepr:
        text = fmt.masked(test.longrepr)
        if len(text) > MAX_LONGREPR:
            text = "…(truncated)…\n" + text[-MAX_LONGREPR:]
        out += _fence(text)
    if test.attachments:
        out += ["Diagnostics:", ""]
        out += [f"- [{fmt.masked(a.label)}]({attachment_href(a)})" for a in test.attachments] + [""]
    else:
        out += ["Diagnostics: none captured.", ""]
    return out


def _evidence_details(record: RunRecord) -> list[str]:
    out: list[str] = []
    for test in fmt.sorted_tests(record):
        if not (test.evidence or test.timelines or test.attachments):
            continue
        out += [f"### {test.requirement_id or test.name} (`{test.nodeid}`)", ""]
        for key, value in mask_value(test.evidence).items():
            rendered = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out.append(f"- **{key}**: {' '.join(str(rendered).split())}")
        if test.evidence:
            out.append("")
        for name, points in test.timelines.items():
            out += [f"Timeline **{name}** (chart in the HTML report):", ""]
            shown = points
            if len(points) > MAX_TIMELINE_ROWS:
                step = len(points) / MAX_TIMELINE_ROWS
                shown = [points[int(i * step)] for i in range(MAX_TIMELINE_ROWS)] + [points[-1]]
            out += _table(
                ["t (s)", "pods", "backlog"],
                [[f"{p['t']:g}", _obs(p.get("pods")), _obs(p.get("backlog"))] for p in shown],
            )
        if test.attachments:
            out += [f"- [{fmt.masked(a.label)}]({attachment_href(a)})" for a in test.attachments] + [""]
    return ["## Evidence", "", *out] if out else []


def _obs(value: object) -> str:
    return "no observation" if value is None else f"{value:g}" if isinstance(value, int | float) else str(value)


def _inventory(inv: fmt.Inventory) -> list[str]:
    out = ["## Environment inventory", ""]
    out += [f"- Kubernetes version: {inv.kubernetes_version or fmt.NOT_REPORTED}"]
    out += [f"- Profile: {inv.profile or fmt.NOT_REPORTED}", ""]
    out += ["### Nodes", ""]
    out += _dict_table(inv.nodes)
    out += ["### Images", ""]
    out += _dict_table(inv.images)
    out += ["### Parameters (secrets masked)", ""]
    out += (
        _table(["Parameter", "Value"], [[k, v] for k, v in sorted(inv.parameters.items())])
        if inv.parameters is not None
        else [f"{fmt.NOT_REPORTED.capitalize()}.", ""]
    )
    out += ["### Suite", ""]
    out += (
        _table(["Key", "Value"], [[k, v] for k, v in inv.suite.items()])
        if inv.suite is not None
        else [f"{fmt.NOT_REPORTED.capitalize()}.", ""]
    )
    if inv.other:
        out += ["### Other", ""]
        out += _table(["Key", "Value"], [[k, v] for k, v in sorted(inv.other.items())])
    return out


def _dict_table(rows: list[dict[str, str]] | None) -> list[str]:
    if rows is None:
        return [f"{fmt.NOT_REPORTED.capitalize()}.", ""]
    if not rows:
        return ["None.", ""]
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    return _table(header, [[row.get(k, "-") for k in header] for row in rows])
