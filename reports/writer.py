"""Writes a run record and every format rendered from it into a run directory."""

from __future__ import annotations

from pathlib import Path

from reports import junit, render_html, render_markdown
from reports.model import RunRecord, atomic_write_text, save_record

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
JUNIT_XML = "junit.xml"


def render_all(record: RunRecord, run_dir: Path) -> dict[str, Path]:
    """(Re)render Markdown, HTML and JUnit from ``record``; returns the paths by format."""
    outputs = {
        "markdown": (run_dir / REPORT_MD, render_markdown.render),
        "html": (run_dir / REPORT_HTML, render_html.render),
        "junit": (run_dir / JUNIT_XML, junit.render),
    }
    written: dict[str, Path] = {}
    for name, (path, renderer) in outputs.items():
        atomic_write_text(path, renderer(record))
        written[name] = path
    return written


def write_run(record: RunRecord, run_dir: Path) -> dict[str, Path]:
    """Write ``run.json`` first (the source of truth), then every rendered format."""
    run_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": save_record(record, run_dir)}
    written.update(render_all(record, run_dir))
    return written
