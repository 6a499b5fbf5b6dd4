"""Building blocks of the report: evidence, recorder, chart and console wait display (masking: test_masking)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from reports import _svg, console
from reports.evidence import Evidence, EvidenceError
from reports.model import Requirement, Status, Verdict
from reports.recorder import PhaseReport, ReportConfigError, RunRecorder, TestMeta


def test_evidence_timeline_normalizes_iso_times_and_keeps_gaps(tmp_path: Path) -> None:
    evidence = Evidence("t::x", run_dir=tmp_path)
    evidence.timeline(
        "consolidater",
        [
            {"t": "2025-01-13T02:15:10+00:00", "pods": 2, "backlog": None},
            {"t": "2025-01-13T02:15:00+00:00", "pods": 1, "backlog": 300},
        ],
    )
    points = evidence.timelines["consolidater"]
    assert [(p["t"], p["pods"], p["backlog"]) for p in points] == [(0.0, 1, 300), (10.0, 2, None)]
    assert points[0]["at"] == "2025-01-13T02:15:00+00:00"
    with pytest.raises(EvidenceError, match="must be a number or None"):
        evidence.timeline("bad", [{"t": 0, "pods": "2", "backlog": 0}])
    with pytest.raises(EvidenceError, match="mixes ISO times and seconds"):
        evidence.timeline(
            "bad", [{"t": 0, "pods": 1, "backlog": 0}, {"t": "2025-01-13T02:15:00", "pods": 1, "backlog": 0}]
        )
    with pytest.raises(EvidenceError, match="finite number"):
        evidence.timeline("bad", [{"t": float("nan"), "pods": 1, "backlog": 0}])


def test_evidence_attach_copies_files_and_directories(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    source = tmp_path / "logs"
    source.mkdir()
    (source / "a.log").write_text("a")
    evidence = Evidence("suites/x/test_y.py::test_z[p1]", run_dir=run_dir)
    first = evidence.attach(source / "a.log", "pod a")
    second = evidence.attach(source / "a.log")
    folder = evidence.attach(source, "all logs")
    assert first.path == "diagnostics/suites_x_test_y.py_test_z_p1/a.log"
    assert second.path == "diagnostics/suites_x_test_y.py_test_z_p1/a-1.log"
    assert (run_dir / folder.path / "a.log").read_text() == "a"
    assert folder.size == 1
    unrecorded = Evidence("t", run_dir=None).attach(source / "a.log")
    assert unrecorded.copied is False and unrecorded.path == str((source / "a.log").resolve())


def _phase(nodeid: str, when: str, outcome: str, **kwargs: object) -> PhaseReport:
    return PhaseReport(nodeid=nodeid, when=when, outcome=outcome, duration=1.0, **kwargs)  # type: ignore[arg-type]


def test_recorder_same_test_run_twice_fail_then_pass_is_flaky(tmp_path: Path) -> None:
    """Reruns without pytest-rerunfailures (e.g. a framework retry) are detected by a second setup."""
    recorder = RunRecorder(base_dir=tmp_path, run_id="r")
    recorder.register("t.py::a", TestMeta(requirement_id="REQ-A"))
    for outcome in ("failed", "passed"):
        recorder.record_phase(_phase("t.py::a", "setup", "passed"))
        recorder.record_phase(_phase("t.py::a", "call", outcome, message="boom" if outcome == "failed" else None))
        recorder.record_phase(_phase("t.py::a", "teardown", "passed"))
    record = recorder.finish(interrupted=False)
    [test] = record.tests
    assert test.status is Status.FLAKY
    assert [a.status for a in test.attempts] == [Status.FAILED, Status.PASSED]
    assert test.duration == 3.0
    assert record.verdict is Verdict.FAIL


def test_recorder_outcome_mapping(tmp_path: Path) -> None:
    recorder = RunRecorder(base_dir=tmp_path, run_id="r")
    recorder.record_phase(_phase("t::teardown_error", "setup", "passed"))
    recorder.record_phase(_phase("t::teardown_error", "call", "passed"))
    recorder.record_phase(_phase("t::teardown_error", "teardown", "failed", message="namespace stuck"))
    recorder.record_phase(_phase("t::xfail", "setup", "passed"))
    recorder.record_phase(_phase("t::xfail", "call", "skipped", wasxfail=True, skip_reason="xfail: GEO-1"))
    recorder.record_phase(_phase("t::incapable_fixture", "setup", "skipped", skip_reason="ENVIRONMENT-LIMITATION: x"))
    statuses = {t.nodeid: t.status for t in recorder.finish(interrupted=False).tests}
    assert statuses == {
        "t::teardown_error": Status.ERROR,
        "t::xfail": Status.XFAILED,
        "t::incapable_fixture": Status.INCOMPLETE,
    }


def test_recorder_run_id_rules(tmp_path: Path) -> None:
    recorder = RunRecorder(base_dir=tmp_path)
    recorder.set_run_id("abc")
    assert recorder.run_id == "abc"
    with pytest.raises(ReportConfigError, match="already in use"):
        recorder.set_run_id("other")
    with pytest.raises(ReportConfigError, match="not usable: it names the report folder"):
        RunRecorder(base_dir=tmp_path, run_id="a/b")
    with pytest.raises(ReportConfigError, match="not JSON-serializable"):
        recorder.set_inventory({"nodes": {object()}})


def test_empty_run_is_incomplete(tmp_path: Path) -> None:
    recorder = RunRecorder(base_dir=tmp_path, run_id="r")
    assert not recorder.is_acceptance_run  # the plugin writes nothing for it; the recorder still judges it
    record = recorder.finish(interrupted=False)
    assert record.verdict is Verdict.INCOMPLETE
    assert record.verdict.exit_code == 2
    assert record.verdict_reasons[0] == "no check was selected"
    assert record.verdict_reasons[1].startswith("coverage unknown: the run carries no requirement catalogue")
    assert len(record.verdict_reasons) == 2

    recorder = RunRecorder(base_dir=tmp_path, run_id="r2")
    recorder.set_catalogue([Requirement("DB-CONN-LIMIT", "database", "connections above the limit are refused")])
    record = recorder.finish(interrupted=False)
    assert record.verdict is Verdict.INCOMPLETE
    assert record.verdict_reasons == [
        "no check was selected",
        "1 requirement(s) not collected (outside the paths given): DB-CONN-LIMIT",
    ]


def test_timeline_chart_breaks_lines_at_missing_observations() -> None:
    points: list[dict[str, Any]] = [
        {"t": 0, "pods": 1, "backlog": 0},
        {"t": 10, "pods": 2, "backlog": 500},
        {"t": 20, "pods": None, "backlog": None},
        {"t": 30, "pods": 3, "backlog": 100},
    ]
    svg = _svg.timeline_chart("consolidater", points)
    assert svg.startswith('<svg class="timeline-chart" data-timeline="consolidater"')
    assert svg.count('class="series-pods"') == 2 and svg.count('class="series-backlog"') == 2
    assert "gaps: no observation" in svg
    assert "no points recorded" in _svg.timeline_chart("empty", [])
    single = _svg.timeline_chart("one", [{"t": 5, "pods": 1, "backlog": 0}])
    assert 'class="series-pods"' in single and "nan" not in single
    assert _svg.sparkline([1.0]) == ""
    assert "<polyline" in _svg.sparkline([1.0, 2.0, 1.5])


def test_waiting_without_a_terminal_writes_one_start_and_one_end_line() -> None:
    stream = io.StringIO()
    console.set_output(stream, isatty=False)
    try:
        with console.waiting("deployment apiserver ready", timeout=120, interval=0.01) as wait:
            time.sleep(0.05)
            wait.observe("2/3 replicas ready")
        with pytest.raises(TimeoutError), console.waiting("backlog drained", timeout=5):
            raise TimeoutError("backlog still 40")
        with pytest.raises(KeyError), console.waiting("pod logs", timeout=5):
            raise KeyError("x")
    finally:
        console.set_output(None)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[wait] deployment apiserver ready (timeout 120s)"
    assert lines[1].startswith("[wait] deployment apiserver ready: done after 0.")
    assert lines[1].endswith("s (timeout 120s)")
    assert lines[3].startswith("[wait] backlog drained: timed out after")
    assert lines[5].startswith("[wait] pod logs: failed (KeyError) after")
    assert len(lines) == 6


def test_waiting_on_a_terminal_updates_at_most_every_second_and_cleans_up() -> None:
    stream = io.StringIO()
    console.set_output(stream, isatty=True, column=lambda: 7)
    try:
        with console.waiting("deployment apiserver ready", timeout=120, interval=0.01) as wait:
            wait.observe("1/3 ready")
            time.sleep(2.3)
            with console.waiting("service endpoints", timeout=30):
                pass
    finally:
        console.set_output(None)
    output = stream.getvalue()
    assert output.startswith("\n\r\x1b[K⏳ waiting for deployment apiserver ready: 0s elapsed, timeout 120s")
    assert "(1/3 ready)" in output
    # One draw at start, at most one per elapsed second, one per nested start/end.
    outer_draws = output.count("waiting for deployment apiserver ready")
    assert 3 <= outer_draws <= 5, output
    assert "[inside 1 other wait(s)]" in output
    # Cleaned: the line is erased and the cursor goes back to where pytest left it (column 7).
    assert output.endswith("\r\x1b[K\x1b[1A\x1b[7C")


def test_waiting_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"), console.waiting("x", timeout=0):
        pass
