"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

from html import escape

from reports import _format as fmt
from reports import _svg
from reports.model import RunRecord, Status, TestResult
from reports.render_markdown import MAX_LONGREPR, attachment_href

# The policy makes "self-contained" checkable: anything the page tried to fetch would be blocked
# and logged as a console error, which the browser self-test fails on.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root { --pass:#1a7f37; --fail:#cf222e; --warn:#9a6700; --muted:#57606a; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:#1f2328;
       margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 12px; } h2 { font-size: 18px; margin-top: 32px;
       border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; }
.verdict { border-radius: 8px; padding: 14px 18px; color: #fff; }
.verdict h2 { margin: 0 0 6px; border: 0; font-size: 24px; letter-spacing: .5px; }
.verdict ul { margin: 0; padding-left: 20px; }
.verdict.PASS { background: var(--pass); } .verdict.FAIL { background: var(--fail); }
.verdict.INCOMPLETE, .verdict.PARTIAL { background: var(--warn); } .verdict.ERROR { background: var(--fail); }
.session-error { border-left: 4px solid var(--fail); padding: 4px 12px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
td code, td .evidence, td.wrap { overflow-wrap: anywhere; } td.nowrap { white-space: nowrap; }
th { background: #f6f8fa; } td.num { text-align: right; white-space: nowrap; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; white-space: pre-wrap; border-radius: 6px; }
.badge { display: inline-block; border-radius: 10px; padding: 1px 8px; font-weight: 600; font-size: 12px;
         color: #fff; white-space: nowrap; }
.s-passed { background: var(--pass); } .s-failed, .s-error, .s-flaky, .s-xpassed { background: var(--fail); }
.s-incomplete, .s-skipped, .s-xfailed, .s-unrun, .s-deselected { background: var(--warn); }
.muted { color: var(--muted); } .evidence { margin: 0; padding-left: 16px; }
.signoff { border: 1px dashed var(--line); padding: 8px 12px; border-radius: 6px; }
.chart { margin: 8px 0 20px; } .chart svg { max-width: 100%; height: auto; font-size: 12px; }
nav a { margin-right: 12px; }
"""


def _badge(status: Status) -> str:
    return f'<span class="badge s-{status.value}">{escape(fmt.STATUS_LABELS[status])}</span>'


def _kv_table(rows: list[tuple[str, str]], header: tuple[str, str] = ("Key", "Value")) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{escape(header[0])}</th><th>{escape(header[1])}</th></tr>{body}</table>"


def _dict_table(rows: list[dict[str, str]] | None) -> str:
    if rows is None:
        return f'<p class="muted">{fmt.NOT_REPORTED.capitalize()}.</p>'
    if not rows:
        return '<p class="muted">None.</p>'
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td><code>{escape(row.get(h, '-'))}</code></td>" for h in header) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _anchor(test: TestResult) -> str:
    return "t-" + "".join(c if c.isalnum() else "-" for c in test.nodeid)[:120]


def render(record: RunRecord) -> str:
    verdict, reasons = record.verdict, record.verdict_reasons
    inv = fmt.inventory(record)
    title = f"Geocube acceptance run {record.run_id}: {verdict.label}"
    body: list[str] = [f"<h1>Geocube acceptance run <code>{escape(record.run_id)}</code></h1>"]
    body.append(
        f'<section class="verdict {verdict.value}" id="verdict"><h2>{escape(verdict.label)}</h2><ul>'
        + "".join(f"<li>{escape(fmt.masked(r))}</li>" for r in reasons)
        + "</ul></section>"
    )
    for error in record.session_errors:
        body.append(
            f'<section class="session-error" id="session-error-{escape(error.phase)}">'
            f"<h2>The run stopped: {escape(error.phase)} failed</h2>"
            f"<pre>{escape(fmt.masked(error.message))}</pre></section>"
        )
    body.append(
        '<nav><a href="#requirements">Requirements</a><a href="#coverage">Coverage</a>'
        '<a href="#failures">Failures</a><a href="#timelines">Timelines</a><a href="#history">History</a>'
        '<a href="#inventory">Inventory</a></nav>'
    )
    suite = inv.suite or {}
    body.append(
        _kv_table(
            [
                ("Started", record.started_at),
                ("Finished", record.finished_at),
                ("Duration", fmt.duration(record.duration)),
                ("Outside the checks", fmt.phases_summary(record)),
                ("Profile", inv.profile or fmt.NOT_REPORTED),
                ("Suite version", suite.get("version", fmt.NOT_REPORTED)),
                ("Suite commit", suite.get("commit", fmt.NOT_REPORTED)),
                ("Exit status", f"{record.exit_status}{' (interrupted)' if record.interrupted else ''}"),
                ("Command", fmt.command(record)),
            ],
            ("Run", "Value"),
        )
    )
    body.append(_signoff(record))
    summary = [(k, str(v)) for k, v in record.summary().items() if v]
    body.append("<h2>Summary</h2>" + _kv_table(summary or [("none", "0")], ("Status", "Checks")))
    body.append(_phases(record))
    body.append(_requirements(record))
    body.append(_coverage(record))
    body.append(_known_defects(record))
    body.append(_failures(record))
    body.append(_timelines(record))
    body.append(_history(record))
    body.append(_inventory(inv))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _signoff(record: RunRecord) -> str:
    if not record.signoffs:
        return (
            '<h2>Sign-off</h2><p class="signoff">Not signed off. To sign off, run '
            f"<code>{escape(fmt.SIGNOFF_HINT)}</code>.</p>"
        )
    rows = "".join(
        f"<tr><td>{escape(s.approver)}</td><td>{escape(s.timestamp)}</td><td>{escape(s.verdict.label)}</td>"
        f"<td>{escape(fmt.masked(s.comment))}</td></tr>"
        for s in record.signoffs
    )
    return (
        '<h2>Sign-off</h2><table id="signoffs"><tr><th>Approver</th><th>Time</th><th>Verdict at sign-off'
        f"</th><th>Comment</th></tr>{rows}</table>"
    )


def _requirements(record: RunRecord) -> str:
    rows = []
    for test in fmt.sorted_tests(record):
        items = fmt.evidence_items(test)
        evidence = (
            '<ul class="evidence">' + "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in items) + "</ul>"
            if items
            else '<span class="muted">-</span>'
        )
        link = (
            f' <a href="#{_anchor(test)}">details</a>'
            if test.status in {Status.FAILED, Status.ERROR, Status.FLAKY, Status.XPASSED}
            else ""
        )
        reason = f'<div class="muted">{escape(fmt.masked(test.skip_reason))}</div>' if test.skip_reason else ""
        rows.append(
            f'<tr class="req {test.status.value}"><td><b>{escape(test.requirement_id or "(none)")}</b></td>'
            f'<td>{escape(fmt.masked(test.requirement) or test.name)}<div class="muted"><code>'
            f'{escape(test.nodeid)}</code></div>{reason}</td><td class="nowrap">{escape(test.area or "-")}</td>'
            f'<td>{_badge(test.status)}{link}</td><td class="num">{fmt.duration(test.duration)}</td>'
            f"<td>{evidence}</td></tr>"
        )
    return (
        '<h2 id="requirements">Requirements</h2><table><tr><th>Requirement</th><th>Description</th>'
        "<th>Area</th><th>Status</th><th>Duration</th><th>Evidence</th></tr>" + "".join(rows) + "</table>"
    )


def _failures(record: RunRecord) -> str:
    parts = ['<h2 id="failures">Failures</h2>']
    for error in record.collection_errors:
        parts.append(
            f"<h3>Collection error in <code>{escape(error.nodeid)}</code></h3>"
            f"<pre>{escape(fmt.masked(error.message)[:MAX_LONGREPR])}</pre>"
        )
    failing = fmt.failures(record)
    if not failing and not record.collection_errors:
        parts.append('<p class="muted">None.</p>')
    for test in failing:
        parts.append(
            f'<article class="failure" id="{_anchor(test)}"><h3>{escape(test.requirement_id or test.name)} '
            f"{_badge(test.status)}</h3><p><code>{escape(test.nodeid)}</code></p>"
        )
        if test.message:
            parts.append(f"<p><b>{escape(fmt.masked(test.message))}</b></p>")
        if len(test.attempts) > 1:
            attempts = ", ".join(f"#{i} {fmt.STATUS_LABELS[a.status]}" for i, a in enumerate(test.attempts, 1))
            parts.append(f"<p>Attempts: {escape(attempts)}</p>")
        if test.longrepr:
            text = fmt.masked(test.longrepr)
            if len(text) > MAX_LONGREPR:
                text = "…(truncated)…\n" + text[-MAX_LONGREPR:]
            parts.append(f"<details><summary>Traceback</summary><pre>{escape(text)}</pre></details>")
        if test.attachments:
            links = "".join(
                f'<li><a href="{escape(attachment_href(a))}">{escape(fmt.masked(a.label))}</a>'
                f' <span class="muted">{escape(a.path)}</span></li>'
                for a in test.attachments
            )
            parts.append(f"<p>Diagnostics captured before cleanup:</p><ul>{links}</ul>")
        else:
            parts.append('<p class="muted">No diagnostics captured.</p>')
        parts.append("</article>")
    unverified = fmt.unverified(record)
    if unverified:
        rows = "".join(
            f"<tr><td>{escape(t.requirement_id or t.nodeid)}</td><td>{_badge(t.status)}</td>"
            f"<td>{escape(fmt.masked(t.skip_reason) or '-')}</td></tr>"
            for t in unverified
        )
        parts.append(
            '<h3 id="not-verified">Not verified</h3><table><tr><th>Check</th><th>Status</th><th>Reason</th>'
            f"</tr>{rows}</table>"
        )
    return "\n".join(parts)


def _timelines(record: RunRecord) -> str:
    parts = ['<h2 id="timelines">Scaling timelines</h2>']
    found = False
    for test in fmt.sorted_tests(record):
        for name, points in test.timelines.items():
            found = True
            table = "".join(
                f'<tr><td class="num">{p["t"]:g}</td><td class="num">{_obs(p.get("pods"))}</td>'
                f'<td class="num">{_obs(p.get("backlog"))}</td></tr>'
                for p in points
            )
            parts.append(
                f'<figure class="chart"><figcaption><b>{escape(test.requirement_id or test.name)}</b> '
                f"{escape(name)} {_badge(test.status)}</figcaption>{_svg.timeline_chart(name, points)}"
                f"<details><summary>Data points</summary><table><tr><th>t (s)</th><th>pods</th>"
                f"<th>backlog</th></tr>{table}</table></details></figure>"
            )
    if not found:
        parts.append('<p class="muted">No timeline was recorded in this run.</p>')
    return "\n".join(parts)


def _obs(value: object) -> str:
    if value is None:
        return '<span class="muted">no observation</span>'
    return f"{value:g}" if isinstance(value, int | float) else escape(str(value))


def _phases(record: RunRecord) -> str:
    if not record.phases:
        return ""
    rows = "".join(
        f"<tr><td>{escape(p.name)}</td><td>{escape(p.status)}</td><td>{escape(fmt.duration(p.duration))}</td>"
        f"<td>{escape(p.started_at or '-')}</td><td><code>{escape(p.log or '-')}</code></td>"
        f"<td><code>{escape(p.during or '-')}</code></td></tr>"
        for p in record.phases
    )
    return (
        '<h2 id="phases">Phases outside the checks</h2><p class="muted">Their time is not part of any check.</p>'
        "<table><tr><th>Phase</th><th>Status</th><th>Duration</th><th>Started</th><th>Log</th>"
        f"<th>Triggered by</th></tr>{rows}</table>"
    )


def _coverage(record: RunRecord) -> str:
    head = '<h2 id="coverage">Coverage</h2>'
    if record.catalogue is None:
        return f"{head}<p>{escape(fmt.NO_CATALOGUE)}</p>"
    rows = "".join(
        f"<tr><td><code>{escape(rid)}</code></td><td>{escape(area)}</td><td>{escape(impact)}</td>"
        f"<td>{escape(state)}</td></tr>"
        for rid, area, impact, state in fmt.coverage_rows(record)
    )
    head += "<table><tr><th>Requirement</th><th>Area</th><th>Impact</th><th>In this run</th></tr>"
    return f"{head}{rows}</table>"


def _known_defects(record: RunRecord) -> str:
    if not record.known_defects:
        return ""
    parts = ['<h2 id="known-defects">Known defects observed</h2>']
    for defect in record.known_defects:
        state = "observed" if defect.observed else "expected on this profile but NOT observed (fixed? review the entry)"
        parts.append(
            f'<section class="known-defect" id="defect-{escape(defect.id)}"><h3>{escape(defect.id)} — {state}</h3>'
            f"<p>{escape(defect.title)}</p><ul><li>requirement: <code>{escape(defect.requirement_id)}</code></li>"
            f"<li>affects: {escape(defect.affects)}</li><li>reference: {escape(defect.reference)}</li></ul>"
            + (f"<pre>{escape(fmt.masked(defect.evidence))}</pre>" if defect.evidence else "")
            + (f"<p>{escape(defect.explanation)}</p>" if defect.explanation else "")
            + "</section>"
        )
    return "\n".join(parts)


def _history(record: RunRecord) -> str:
    diff = record.history
    parts = ['<h2 id="history">Changes since the previous comparable run</h2>']
    if diff is None:
        parts.append('<p class="muted">No history recorded for this run.</p>')
        return "\n".join(parts)
    if diff.key:
        parts.append("<p>Comparable runs share: " + escape("; ".join(f"{k} {v}" for k, v in diff.key.items())) + "</p>")
    if diff.incomparable_runs:
        parts.append(
            f'<p class="muted">{diff.incomparable_runs} earlier run(s) of another cluster, profile or selection '
            "not compared.</p>"
        )
    if diff.previous_run_id is None:
        parts.append("<p>First comparable run in this history.</p>")
    else:
        parts.append(
            f"<p>Previous comparable run: <code>{escape(diff.previous_run_id)}</code> "
            f"(verdict {escape(diff.previous_verdict or '?')})</p>"
        )
    for title, css, nodeids in (
        ("Newly failing", "newly-failing", diff.newly_failing),
        ("Fixed", "fixed", diff.fixed),
        ("Still failing", "still-failing", diff.still_failing),
        ("Flaky in this run", "flaky", diff.flaky),
        ("New checks", "new", diff.new_tests),
        ("Removed checks", "removed", diff.removed_tests),
        ("Slower than usual", "slower", diff.slower),
    ):
        if nodeids:
            items = "".join(f"<li><code>{escape(n)}</code></li>" for n in nodeids)
            parts.append(f'<h3>{title} ({len(nodeids)})</h3><ul class="{css}">{items}</ul>')
    rows = []
    for nodeid, series in sorted(diff.durations.items()):
        change = "-"
        if len(series) >= 2 and series[-2] > 0:
            change = f"{(series[-1] - series[-2]) / series[-2] * 100:+.0f}%"
        rows.append(
            f"<tr><td><code>{escape(nodeid)}</code></td><td>{_svg.sparkline(series)}</td>"
            f'<td class="num">{escape(" → ".join(fmt.duration(s) for s in series[-4:]))}</td>'
            f'<td class="num">{change}</td></tr>'
        )
    if rows:
        parts.append(
            "<h3>Duration trend</h3><table><tr><th>Check</th><th>Trend</th><th>Last durations</th>"
            "<th>vs previous</th></tr>" + "".join(rows) + "</table>"
        )
    return "\n".join(parts)


def _inventory(inv: fmt.Inventory) -> str:
    parts = ['<h2 id="inventory">Environment inventory</h2>']
    parts.append(
        _kv_table(
            [
                ("Kubernetes version", inv.kubernetes_version or fmt.NOT_REPORTED),
                ("Profile", inv.profile or fmt.NOT_REPORTED),
            ]
        )
    )
    parts.append("<h3>Nodes</h3>" + _dict_table(inv.nodes))
    parts.append("<h3>Images</h3>" + _dict_table(inv.images))
    parts.append(
        "<h3>Parameters (secrets masked)</h3>"
        + (
            _kv_table(sorted(inv.parameters.items()), ("Parameter", "Value"))
            if inv.parameters is not None
            else f'<p class="muted">{fmt.NOT_REPORTED.capitalize()}.</p>'
        )
    )
    parts.append(
        "<h3>Suite</h3>"
        + (
            _kv_table(list(inv.suite.items()))
            if inv.suite is not None
            else f'<p class="muted">{fmt.NOT_REPORTED.capitalize()}.</p>'
        )
    )
    if inv.other:
        parts.append("<h3>Other</h3>" + _kv_table(sorted(inv.other.items())))
    return "\n".join(parts)
