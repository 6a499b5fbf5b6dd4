"""Reports built from recorded runs (tests/fixtures_data/recorded_runs), their history, and the CLI."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports import cli, history, junit, render_html, render_markdown
from reports.model import RecordError, RunRecord, Status, Verdict, load_record

RECORDED = Path(__file__).resolve().parents[1] / "fixtures_data" / "recorded_runs"
RUNS = ["01-pass", "02-fail", "03-flaky", "04-incomplete"]
LEAKED = "hunter2-do-not-leak"
REQUIREMENTS = [
    "DB-CONN-LIMIT",
    "DB-PERMISSIONS",
    "MSG-EVENTS-DELIVERY",
    "MSG-CONSOLIDATION-ACK",
    "AUTOSCALE-BACKLOG",
    "STORAGE-INGEST-PATHS",
    "STORAGE-CANCELLED-CLEANUP",
    "PLATFORM-RBAC",
    "PLATFORM-READY",
]


def recorded(name: str) -> RunRecord:
    return load_record(RECORDED / f"{name}.json")


@pytest.fixture
def run_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A run directory holding a copy of the recorded run named by the test's ``run_name`` parameter."""
    name = getattr(request, "param", "02-fail")
    target = tmp_path / recorded(name).run_id
    target.mkdir()
    shutil.copy(RECORDED / f"{name}.json", target / "run.json")
    return target


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("01-pass", Verdict.PASS),
        ("02-fail", Verdict.FAIL),
        ("03-flaky", Verdict.FAIL),
        ("04-incomplete", Verdict.INCOMPLETE),
    ],
)
def test_recorded_run_verdict_and_content(name: str, verdict: Verdict) -> None:
    record = recorded(name)
    assert record.verdict is verdict
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    xml = junit.render(record)
    assert "## Verdict: " in markdown and verdict.label in markdown
    assert f'<section class="verdict {verdict.value}"' in html
    for requirement in REQUIREMENTS:
        assert f"| {requirement} |" in markdown
        assert f"<b>{requirement}</b>" in html
    # Inventory: Kubernetes version, nodes, every image digest, profile, suite commit.
    for text in (markdown, html):
        assert "v1.30.4+k3s1" in text and "geocube-accept-0" in text
        assert "b4f49e2c0d7a4f7e9e3a1c2b5d6e7f8091a2b3c4" in text
        for image in record.inventory["images"]:
            assert image["digest"] in text
        assert record.inventory["profile"] in text
    for text in (markdown, html, xml):
        assert LEAKED not in text, "an unmasked secret of the recorded run reached a rendered report"
    root = ET.fromstring(xml)
    assert root.attrib["tests"] == "9"
    properties = {p.attrib["name"]: p.attrib["value"] for p in root.iter("property")}
    assert properties["verdict"] == verdict.label


def test_fail_report_shows_message_evidence_and_diagnostics_links() -> None:
    record = recorded("02-fail")
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    message = "53300 appeared at connection 87, expected no refusal before max_connections=100"
    assert message in markdown and message in html
    assert "refused_at_connection=87" in markdown
    link = "diagnostics/suites_database_test_connections.py_test_connection_limit_refused_with_53300/postgis-0.log"
    assert f"[postgis logs (previous container too)]({link})" in markdown
    assert f'href="{link}"' in html
    # The DSN in the traceback keeps its shape, without the password.
    assert "postgresql://geocube:********@postgis.geocube-acc.svc" in markdown
    case = next(c for c in ET.fromstring(junit.render(record)).iter("testcase") if c.find("failure") is not None)
    assert case.attrib["name"] == "test_connection_limit_refused_with_53300"


def test_flaky_report_lists_attempts_and_is_never_passed() -> None:
    record = recorded("03-flaky")
    flaky = next(t for t in record.tests if t.requirement_id == "MSG-EVENTS-DELIVERY")
    assert flaky.status is Status.FLAKY
    markdown = render_markdown.render(record)
    assert "Attempts: #1 FAIL, #2 PASS" in markdown
    assert "| MSG-EVENTS-DELIVERY |" in markdown and "| FLAKY |" in markdown
    assert record.verdict_reasons == ["1 flaky: MSG-EVENTS-DELIVERY"]


def test_incomplete_report_explains_the_limitation_and_charts_without_backlog() -> None:
    record = recorded("04-incomplete")
    html = render_html.render(record)
    assert "ENVIRONMENT-LIMITATION: the Pub/Sub emulator exposes no subscription backlog metric" in html
    assert 'class="timeline-chart" data-timeline="consolidater"' in html
    assert 'class="series-pods"' in html
    assert 'class="series-backlog"' not in html  # no observation is no line, never a line at zero
    assert "backlog: never observed" in html
    assert record.verdict_reasons[0].startswith("1 environment not capable: AUTOSCALE-BACKLOG")


def test_html_is_self_contained() -> None:
    html = render_html.render(recorded("01-pass"))
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "Content-Security-Policy" in html and "<style>" in html
    assert html.count("<svg") >= 1


def test_history_replay_of_recorded_runs(tmp_path: Path) -> None:
    diffs = {name: history.update(tmp_path, recorded(name)) for name in RUNS}
    assert diffs["01-pass"].previous_run_id is None
    fail = diffs["02-fail"]
    assert fail.previous_run_id == "20250113-021500-a1b2"
    assert fail.newly_failing == ["suites/database/test_connections.py::test_connection_limit_refused_with_53300"]
    assert fail.slower == ["suites/platform/test_readiness.py::test_all_workloads_ready"]
    flaky = diffs["03-flaky"]
    assert flaky.fixed == ["suites/database/test_connections.py::test_connection_limit_refused_with_53300"]
    assert flaky.flaky == ["suites/messaging/test_events.py::test_events_delivered_once"]
    assert flaky.newly_failing == []
    trend = diffs["04-incomplete"].durations["suites/platform/test_readiness.py::test_all_workloads_ready"]
    assert trend == [96.0, 181.0, 96.0, 96.0]
    entries, corrupt = history.read(tmp_path / history.HISTORY_FILE)
    assert [e["verdict"] for e in entries] == ["PASS", "FAIL", "FAIL", "INCOMPLETE"] and corrupt == 0


def test_history_skips_corrupt_lines(tmp_path: Path) -> None:
    path = tmp_path / history.HISTORY_FILE
    path.write_text('{"truncated": \nnot json\n')
    diff = history.update(tmp_path, recorded("01-pass"))
    assert diff.previous_run_id is None
    entries, corrupt = history.read(path)
    assert len(entries) == 1 and corrupt == 2


@pytest.mark.parametrize("run_dir", ["01-pass"], indirect=True)
def test_cli_regenerates_every_format_from_run_json(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(run_dir)]) == cli.EXIT_OK
    for name in ("report.md", "report.html", "junit.xml"):
        assert (run_dir / name).is_file()
    assert "SIGN-OFF PASS" in (run_dir / "report.md").read_text()
    assert "verdict: SIGN-OFF PASS" in capsys.readouterr().out


@pytest.mark.parametrize("run_dir", ["01-pass"], indirect=True)
def test_cli_records_sign_off_in_run_json_and_reports(run_dir: Path) -> None:
    assert cli.main(["report", str(run_dir), "--approver", "Ada Lovelace", "--comment", "release 1.4.0"]) == 0
    data = json.loads((run_dir / "run.json").read_text())
    [signoff] = data["signoffs"]
    assert signoff["approver"] == "Ada Lovelace" and signoff["comment"] == "release 1.4.0"
    assert signoff["verdict"] == "PASS"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", signoff["timestamp"])
    assert "Ada Lovelace" in (run_dir / "report.html").read_text()
    assert "| Ada Lovelace |" in (run_dir / "report.md").read_text()
    # A second sign-off is appended: the record keeps the audit trail.
    assert cli.main(["report", str(run_dir), "--approver", "Grace Hopper"]) == 0
    assert [s.approver for s in load_record(run_dir).signoffs] == ["Ada Lovelace", "Grace Hopper"]


@pytest.mark.parametrize("run_dir", ["02-fail"], indirect=True)
def test_cli_refuses_to_sign_off_a_failed_run_without_comment(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(run_dir), "--approver", "Ada"]) == cli.EXIT_USAGE
    assert "the verdict is FAIL; signing it off needs --comment" in capsys.readouterr().err
    assert load_record(run_dir).signoffs == []
    comment = "known issue GEO-123 accepted; db password=hunter2-do-not-leak rotated"
    assert cli.main(["report", str(run_dir), "--approver", "Ada", "--comment", comment]) == 0
    [signoff] = load_record(run_dir).signoffs
    assert signoff.verdict is Verdict.FAIL
    assert LEAKED not in (run_dir / "run.json").read_text()
    assert "| Ada |" in (run_dir / "report.md").read_text()


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(tmp_path / "missing")]) == cli.EXIT_RECORD
    assert "no run record at" in capsys.readouterr().err
    shutil.copy(RECORDED / "01-pass.json", tmp_path / "run.json")
    assert cli.main(["report", str(tmp_path), "--comment", "x"]) == cli.EXIT_USAGE
    (tmp_path / "run.json").write_text('{"schema": 99}')
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_RECORD
    assert "schema 99 is not supported" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([])


def test_record_round_trips_through_json(tmp_path: Path) -> None:
    record = recorded("03-flaky")
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    with pytest.raises(RecordError, match="malformed"):
        RunRecord.from_dict({"schema": 1, "run_id": "x"})


@pytest.mark.parametrize("run_dir", ["01-pass"], indirect=True)
def test_cli_through_the_geocube_acceptance_entry_point(run_dir: Path) -> None:
    """``geocube-acceptance report RUN_DIR`` hands ``[RUN_DIR, ...]`` to ``reports.cli.main``."""
    entry = pytest.importorskip("geocube_acceptance.cli")
    assert entry.main(["report", str(run_dir), "--approver", "Ada"]) == 0
    assert cli.main([str(run_dir)]) == 0
    assert [s.approver for s in load_record(run_dir).signoffs] == ["Ada"]
    assert (run_dir / "report.html").is_file()
