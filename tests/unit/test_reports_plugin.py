"""The report plugin driven by small fake suites run through pytester (no cluster)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from reports import history
from tests.unit.fake_suite import PLUGIN_ARGS, check, load, module, with_catalogue

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    """Run the fake suite with the plugin; return the result and the base report dir."""
    base = pytester.path / "out"
    result = pytester.runpytest(*PLUGIN_ARGS, "--geocube-report-dir", str(base), *args)
    return result, base


def only_run_dir(base: Path) -> Path:
    runs = [p for p in base.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run directory in {base}, found {runs}"
    return runs[0]


def only_run(base: Path) -> tuple[Path, dict[str, Any]]:
    """The one run directory under ``base`` and its record."""
    run_dir = only_run_dir(base)
    return run_dir, load(run_dir)


def judged_run(
    pytester: pytest.Pytester, *args: str, exit_status: int, verdict: str, **outcomes: int
) -> tuple[pytest.RunResult, Path, dict[str, Any]]:
    """Run the fake suite with the plugin and check its ``outcomes``, exit status and recorded verdict; return the
    result, the run directory and its record."""
    __tracebackhide__ = True
    result, base = run(pytester, *args)
    result.assert_outcomes(**outcomes)
    assert result.ret == exit_status
    run_dir, data = only_run(base)
    assert data["verdict"] == verdict
    return result, run_dir, data


def by_req(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["requirement_id"] or t["nodeid"]: t for t in data["tests"]}


def junit_cases(run_dir: Path) -> dict[str, ET.Element]:
    root = ET.parse(run_dir / "junit.xml").getroot()
    return {case.attrib["name"]: case for case in root.iter("testcase")}


_ONE_CHECK = module(check("test_ok", "PLAT-OK", 'evidence.add("k", 1)', args="evidence"))


def test_all_passing_run_is_sign_off_pass_and_writes_every_format(pytester: pytest.Pytester) -> None:
    with_catalogue(
        pytester,
        "DB-CONN-LIMIT",
        "DB-PERMISSIONS",
        "STO-GCS-ONLY",
        titles={
            "DB-CONN-LIMIT": "connections above the limit are refused with 53300",
            "DB-PERMISSIONS": "the application role cannot alter the schema",
        },
        not_applicable={"STO-GCS-ONLY": "only with storage gs"},
    )
    pytester.makepyfile(
        test_db="""
        import pytest

        @pytest.mark.database
        @pytest.mark.requirement("DB-CONN-LIMIT", "connections above the limit are refused with 53300")
        def test_limit(evidence):
            evidence.add("refused_at_connection", 101)
            evidence.add("sqlstate", "53300")

        @pytest.mark.requirement("DB-PERMISSIONS")
        def test_permissions():
            '''The application role cannot alter the schema.'''
        """
    )
    result, run_dir, data = judged_run(pytester, exit_status=0, verdict="PASS", passed=2)
    assert {p.name for p in run_dir.iterdir()} >= {"run.json", "report.md", "report.html", "junit.xml"}
    assert data["verdict_label"] == "SIGN-OFF PASS"
    assert data["exit_status"] == 0
    assert data["verdict_reasons"] == [
        "all 2 applicable requirements ran and passed; not applicable to this profile: "
        "STO-GCS-ONLY (only with storage gs)"
    ]
    assert [r["id"] for r in data["catalogue"]] == ["DB-CONN-LIMIT", "DB-PERMISSIONS", "STO-GCS-ONLY"]
    tests = by_req(data)
    limit = tests["DB-CONN-LIMIT"]
    assert limit["status"] == "passed"
    assert limit["area"] == "database"
    assert limit["requirement"] == "connections above the limit are refused with 53300"
    assert limit["phases"] == {"setup": "passed", "call": "passed", "teardown": "passed"}
    assert limit["evidence"] == {"refused_at_connection": 101, "sqlstate": "53300"}
    # The catalogue's title wins over the marker's description and the docstring.
    assert tests["DB-PERMISSIONS"]["requirement"] == "the application role cannot alter the schema"
    markdown = (run_dir / "report.md").read_text()
    assert "SIGN-OFF PASS" in markdown
    assert "| DB-CONN-LIMIT | connections above the limit are refused with 53300 | database | PASS |" in markdown
    assert "refused_at_connection=101" in markdown
    assert "## Coverage" in markdown
    assert "| STO-GCS-ONLY | storage | - | not applicable: only with storage gs |" in markdown
    html = (run_dir / "report.html").read_text()
    assert "SIGN-OFF PASS" in html and 'id="coverage"' in html
    root = ET.parse(run_dir / "junit.xml").getroot()
    assert root.attrib["tests"] == "2" and root.attrib["failures"] == "0" and root.attrib["errors"] == "0"
    result.stdout.fnmatch_lines(
        ["*geocube sign-off report*", "verdict: SIGN-OFF PASS (exit status 0)", "report: *report.html"]
    )


def test_requirement_title_from_the_marker_else_the_docstring_without_a_catalogue(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_db=module(
            check("test_limit", "DB-CONN-LIMIT", title="connections above the limit are refused with 53300"),
            check("test_permissions", "DB-PERMISSIONS", '"""The application role cannot alter the schema."""'),
        )
    )
    # PARTIAL, exit status 0: every check passed, but nothing shows they were all the requirements.
    _, run_dir, data = judged_run(pytester, exit_status=0, verdict="PARTIAL", passed=2)
    assert data["catalogue"] is None
    assert any(
        r.startswith("coverage unknown: the run carries no requirement catalogue") for r in data["verdict_reasons"]
    )
    tests = by_req(data)
    assert tests["DB-CONN-LIMIT"]["requirement"] == "connections above the limit are refused with 53300"
    assert tests["DB-PERMISSIONS"]["requirement"] == "The application role cannot alter the schema."
    assert (
        "No requirement catalogue: this run cannot show that every requirement ran."
        in (run_dir / "report.md").read_text()
    )


def test_failure_is_fail_with_message_and_linked_diagnostics(pytester: pytest.Pytester) -> None:
    with_catalogue(pytester, "DB-CONN-LIMIT", "DB-OK")
    pytester.makepyfile(
        test_db="""
        import pytest

        @pytest.fixture
        def diagnostics(request, evidence, tmp_path):
            yield
            # What the framework does on failure: write diagnostics, attach them, then clean up.
            events = tmp_path / "events.txt"
            events.write_text("Warning  FailedScheduling  pod/postgis-0")
            evidence.attach(events, "events")

        @pytest.mark.requirement("DB-CONN-LIMIT", "limit")
        def test_limit(evidence, diagnostics):
            evidence.add("refused_at_connection", 87)
            assert 87 == 101, "53300 appeared at connection 87"

        @pytest.mark.requirement("DB-OK", "ok")
        def test_ok():
            pass
        """
    )
    _, run_dir, data = judged_run(pytester, exit_status=1, verdict="FAIL", passed=1, failed=1)
    assert data["verdict_reasons"] == ["1 failed: DB-CONN-LIMIT"]
    failed = by_req(data)["DB-CONN-LIMIT"]
    assert failed["status"] == "failed"
    assert failed["phases"]["call"] == "failed"
    assert "53300 appeared at connection 87" in failed["message"]
    assert "assert 87 == 101" in failed["longrepr"]
    [attachment] = failed["attachments"]
    assert attachment["copied"] is True
    assert (run_dir / attachment["path"]).read_text() == "Warning  FailedScheduling  pod/postgis-0"
    markdown = (run_dir / "report.md").read_text()
    assert "## Failures" in markdown
    assert f"[events]({attachment['path']})" in markdown
    html = (run_dir / "report.html").read_text()
    assert f'href="{attachment["path"]}"' in html
    failure = junit_cases(run_dir)["test_limit"].find("failure")
    assert failure is not None and "53300 appeared at connection 87" in failure.attrib["message"]


def test_failure_then_pass_on_rerun_is_flaky_never_passed(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures", reason="pytest-rerunfailures provides the reruns")
    pytester.makepyfile(
        test_msg="""
        import pytest

        calls = []

        @pytest.mark.requirement("MSG-EVENTS-DELIVERY", "events delivered once")
        def test_delivery():
            calls.append(1)
            assert len(calls) > 1, "delivered 199 of 200 events"
        """
    )
    result, base = run(pytester, "--reruns", "2")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    assert result.ret == 1  # FAIL: it violated its requirement once
    run_dir, data = only_run(base)
    test = by_req(data)["MSG-EVENTS-DELIVERY"]
    assert test["status"] == "flaky"
    assert [a["status"] for a in test["attempts"]] == ["failed", "passed"]
    assert "delivered 199 of 200 events" in test["message"]
    assert data["verdict"] == "FAIL"
    assert data["summary"]["passed"] == 0 and data["summary"]["flaky"] == 1
    failure = junit_cases(run_dir)["test_delivery"].find("failure")
    assert failure is not None and failure.attrib["type"] == "flaky"
    assert "| MSG-EVENTS-DELIVERY | events delivered once | - | FLAKY |" in (run_dir / "report.md").read_text()


def test_environment_limitation_and_skips_are_incomplete_never_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_scaling="""
        import pytest
        import reports

        @pytest.mark.requirement("AUTOSCALE-BACKLOG", "scales with the backlog")
        def test_backlog(evidence):
            evidence.timeline("consolidater", [{"t": 0, "pods": 1, "backlog": None}])
            reports.incapable("the Pub/Sub emulator exposes no backlog metric")

        @pytest.mark.requirement("AUTOSCALE-MIN")
        def test_min():
            pytest.skip("ENVIRONMENT-LIMITATION: single-node cluster")

        @pytest.mark.requirement("AUTOSCALE-OK")
        def test_ok():
            pass
        """
    )
    _, run_dir, data = judged_run(pytester, exit_status=2, verdict="INCOMPLETE", passed=1, skipped=2)
    tests = by_req(data)
    assert tests["AUTOSCALE-BACKLOG"]["status"] == "incomplete"
    assert tests["AUTOSCALE-BACKLOG"]["skip_reason"] == (
        "ENVIRONMENT-LIMITATION: the Pub/Sub emulator exposes no backlog metric"
    )
    assert tests["AUTOSCALE-MIN"]["status"] == "incomplete"
    assert any("environment not capable" in r for r in data["verdict_reasons"])
    skipped = junit_cases(run_dir)["test_backlog"].find("skipped")
    assert skipped is not None and skipped.attrib["type"] == "environment-limitation"
    markdown = (run_dir / "report.md").read_text()
    assert "⚠️ INCOMPLETE" in markdown and "## Not verified" in markdown
    assert 'class="timeline-chart"' in (run_dir / "report.html").read_text()


def test_a_check_whose_prerequisite_failed_is_blocked_not_failed_again(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_queue=module(
            check("test_transport", "MSG-TRANSPORT", 'assert False, "permission denied for table pgq_jobs"'),
            check("test_app_path", "MSG-APP-PATH", 'assert False, "never reached"', prerequisite="MSG-TRANSPORT"),
            check("test_unrelated", "MSG-UNRELATED", prerequisite="DB-OTHER"),
        )
    )
    _, _, data = judged_run(pytester, exit_status=1, verdict="FAIL", failed=1, skipped=1, passed=1)
    tests = by_req(data)
    assert tests["MSG-TRANSPORT"]["status"] == "failed"
    assert tests["MSG-APP-PATH"]["status"] == "skipped"
    assert tests["MSG-APP-PATH"]["skip_reason"].startswith("BLOCKED: prerequisite MSG-TRANSPORT failed earlier")
    assert "permission denied for table pgq_jobs" in tests["MSG-APP-PATH"]["skip_reason"]


def test_a_blocked_check_blocks_what_builds_on_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_chain=module(
            check("test_config", "AS-CONFIG", 'assert False, "wrong queue"'),
            check("test_scale", "AS-SCALE", prerequisite="AS-CONFIG"),
            check("test_shrink", "AS-SHRINK", prerequisite="AS-SCALE"),
        )
    )
    result, base = run(pytester)
    result.assert_outcomes(failed=1, skipped=2)
    shrink = by_req(load(only_run_dir(base)))["AS-SHRINK"]["skip_reason"]
    assert shrink.startswith("BLOCKED: prerequisite AS-SCALE was blocked (prerequisite AS-CONFIG failed earlier")
    assert "wrong queue" in shrink


def test_a_requirement_id_is_a_keyword(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ids=module(check("test_limit", "DB-CONN-LIMIT"), check("test_settings", "DB-CONN-SETTINGS"))
    )
    result, _ = run(pytester, "-k", "DB-CONN-LIMIT")
    result.assert_outcomes(passed=1, deselected=1)
    result, _ = run(pytester, "-k", "not DB-CONN-LIMIT")
    result.assert_outcomes(passed=1, deselected=1)
    result, _ = run(pytester, "-k", "DB-CONN")
    result.assert_outcomes(passed=2)


def test_a_check_runs_when_its_prerequisite_passed_or_was_deselected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_queue=module(
            check("test_transport", "MSG-TRANSPORT"),
            check("test_app_path", "MSG-APP-PATH", prerequisite="MSG-TRANSPORT"),
        )
    )
    result, _ = run(pytester)
    result.assert_outcomes(passed=2)
    result, _ = run(pytester, "-k", "app_path")
    result.assert_outcomes(passed=1, deselected=1)


def test_plain_skip_and_module_skip_are_incomplete_and_deselection_a_coverage_gap(
    pytester: pytest.Pytester,
) -> None:
    with_catalogue(pytester, "PLAT-SKIPPED", "PLAT-DESELECTED", "PLAT-OK", "STO-OBJECTS")
    pytester.makepyfile(
        test_a=module(
            check("test_skipped", "PLAT-SKIPPED", 'pytest.skip("not today")'),
            check("test_deselected", "PLAT-DESELECTED"),
            check("test_ok", "PLAT-OK"),
        ),
        test_b=module(
            'pytest.skip("ENVIRONMENT-LIMITATION: no object storage", allow_module_level=True)',
            check("test_never_collected", "STO-OBJECTS"),
        ),
    )
    result, base = run(pytester, "-k", "not deselected", "--geocube-run-id", "with-skips")
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == 2
    data = load(base / "with-skips")
    statuses = {t["nodeid"]: t["status"] for t in data["tests"]}
    assert statuses == {
        "test_a.py::test_skipped": "skipped",
        "test_a.py::test_deselected": "deselected",
        "test_a.py::test_ok": "passed",
        "test_b.py": "incomplete",
    }
    assert data["verdict"] == "INCOMPLETE"
    assert data["verdict_reasons"] == [
        "1 environment not capable: test_b.py",
        "1 skipped: PLAT-SKIPPED",
        "1 requirement(s) deselected (-k/-m): PLAT-DESELECTED",
        "1 requirement(s) not collected (outside the paths given): STO-OBJECTS",
    ]

    # Deselection alone leaves requirements out of a run whose checks all passed: PARTIAL, not INCOMPLETE.
    result, base = run(pytester, "test_a.py", "-k", "test_ok", "--geocube-run-id", "deselected-only")
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == 0
    data = load(base / "deselected-only")
    assert data["verdict"] == "PARTIAL"
    assert data["verdict_reasons"] == [
        "all 1 selected checks passed, but this is not a sign-off:",
        "2 requirement(s) deselected (-k/-m): PLAT-SKIPPED, PLAT-DESELECTED",
        "1 requirement(s) not collected (outside the paths given): STO-OBJECTS",
    ]


def test_collection_error_and_bad_requirement_marker_fail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken="import nonexistent_module_xyz\n",
        test_marker=module(check("test_x", "DB CONN", title="an id with a space")),
    )
    # A malformed requirement marker still makes the session an acceptance run: it is judged, not ignored.
    _, _, data = judged_run(
        pytester, "--continue-on-collection-errors", exit_status=1, verdict="FAIL", passed=1, errors=1
    )
    errors = {e["nodeid"]: e["message"] for e in data["collection_errors"]}
    assert "nonexistent_module_xyz" in errors["test_broken.py"]
    assert "requirement id without spaces" in errors["test_marker.py::test_x"]


def test_a_malformed_requirement_marker_alone_fails_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marker="""
        import pytest

        @pytest.mark.requirement(id=None)
        def test_x():
            pass
        """
    )
    # Exit status 1 where pytest alone would say 0: the check has no requirement to be counted against.
    _, _, data = judged_run(pytester, exit_status=1, verdict="FAIL", passed=1)
    assert "requirement id without spaces" in data["collection_errors"][0]["message"]


def test_setup_error_and_interrupted_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a=module(
            """
            @pytest.fixture
            def stack():
                raise RuntimeError("namespace quota exceeded")
            """,
            check("test_1", "PLAT-ONE", args="stack"),
            check("test_2", "PLAT-TWO"),
        )
    )
    # A check's own setup error is a FAIL (exit status 1), not a session ERROR.
    _, _, data = judged_run(pytester, "-x", exit_status=1, verdict="FAIL", errors=1)
    statuses = {t["nodeid"]: t["status"] for t in data["tests"]}
    assert statuses == {"test_a.py::test_1": "error", "test_a.py::test_2": "unrun"}
    assert data["interrupted"] is True
    assert "namespace quota exceeded" in data["tests"][0]["message"]


def test_inventory_secrets_and_run_id_from_the_framework(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        import reports

        def pytest_addoption(parser):
            parser.addoption("--db-password")  # a secret option, to check the command line is masked

        def pytest_configure(config):
            config.stash[reports.RUN_ID_KEY] = "framework-run-7f3a"

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionstart(session):
            recorder = reports.get_recorder(session.config)
            recorder.add_secret("generated-Pa55word")
            recorder.set_inventory({
                "profile": "emulator",
                "kubernetes": {"version": "v1.30.4", "nodes": [{"name": "node-0", "kubelet": "v1.30.4"}]},
                "images": [{"name": "apiserver", "image": "geocube/apiserver:1.4.0",
                            "digest": "sha256:" + "ab" * 32}],
                "parameters": {"namespace": "geocube-acc", "db_password": "plain-in-params",
                               "api_token": "tok-123456"},
                "suite": {"version": "0.1.0", "commit": "b4f49e2"},
            })
        """
    )
    pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.mark.requirement("DB-AUTH")
        def test_leaky(evidence):
            evidence.add("dsn", "postgresql://geocube:generated-Pa55word@db:5432/geocube")
            evidence.add("client_secret", "abc")
            assert False, "login failed with password=generated-Pa55word"
        """
    )
    result, base = run(pytester, "--db-password", "cli-secret-value")
    result.assert_outcomes(failed=1)
    run_dir = base / "framework-run-7f3a"
    data = load(run_dir)
    assert data["run_id"] == "framework-run-7f3a"
    assert data["inventory"]["images"][0]["digest"] == "sha256:" + "ab" * 32
    assert data["inventory"]["parameters"]["db_password"] == "********"
    everything = "".join(p.read_text() for p in run_dir.iterdir() if p.is_file())
    for secret in ("generated-Pa55word", "plain-in-params", "tok-123456", "cli-secret-value"):
        assert secret not in everything, f"{secret!r} leaked into the report"
    html = (run_dir / "report.html").read_text()
    assert "sha256:" + "ab" * 32 in html and "v1.30.4" in html and "emulator" in html


def test_no_report_writes_nothing_but_still_judges(pytester: pytest.Pytester) -> None:
    with_catalogue(pytester, "PLAT-OK")
    pytester.makepyfile(test_a=_ONE_CHECK)
    result, base = run(pytester, "--geocube-no-report")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert not base.exists()
    assert not (pytester.path / "reports").exists()
    result.stdout.fnmatch_lines(
        ["verdict: SIGN-OFF PASS (exit status 0)", "report files not written (--geocube-no-report)"]
    )


def test_report_dir_resolution_cli_over_env_over_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\ngeocube_report_dir = from-ini\n")
    pytester.makepyfile(test_a=_ONE_CHECK)
    args = (*PLUGIN_ARGS, "--geocube-run-id", "r1")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    assert (pytester.path / "from-ini" / "r1" / "run.json").is_file()
    monkeypatch.setenv("GEOCUBE_REPORT_DIR", str(pytester.path / "from-env"))
    result = pytester.runpytest(*args)
    result.stdout.fnmatch_lines(["geocube-report: *from-env (from env GEOCUBE_REPORT_DIR)"])
    assert (pytester.path / "from-env" / "r1" / "run.json").is_file()
    pytester.runpytest(*args, "--geocube-report-dir", "from-cli").assert_outcomes(passed=1)
    assert (pytester.path / "from-cli" / "r1" / "run.json").is_file()


def test_invalid_run_id_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_ok():\n    pass\n")
    result = pytester.runpytest(*PLUGIN_ARGS, "--geocube-run-id", "../escape")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--geocube-run-id: run id '../escape' is not usable: it names the report folder*"])


def test_generated_run_id_format(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=_ONE_CHECK)
    _, base = run(pytester)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", only_run_dir(base).name)


def test_history_across_runs_shows_newly_failing_and_fixed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_a=module(
            "import os",
            check("test_toggles", "PLAT-TOGGLES", 'assert os.environ.get("BREAK") != "1"'),
            check("test_stable", "PLAT-STABLE"),
        )
    )
    run(pytester, "--geocube-run-id", "run-1")
    with monkeypatch.context() as patch:
        patch.setenv("BREAK", "1")
        run(pytester, "--geocube-run-id", "run-2")
    _, base = run(pytester, "--geocube-run-id", "run-3")
    run2, run3 = load(base / "run-2"), load(base / "run-3")
    assert run2["history"]["previous_run_id"] == "run-1"
    assert run2["history"]["newly_failing"] == ["test_a.py::test_toggles"]
    assert run3["history"]["fixed"] == ["test_a.py::test_toggles"]
    assert len(run3["history"]["durations"]["test_a.py::test_stable"]) == 3
    entries, corrupt = history.read(base / history.HISTORY_FILE)
    assert [e["run_id"] for e in entries] == ["run-1", "run-2", "run-3"] and corrupt == 0
    assert "Newly failing" in (base / "run-2" / "report.md").read_text()
    assert "Fixed" in (base / "run-3" / "report.md").read_text()


def test_evidence_rejects_values_that_are_not_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="""
        import pytest
        from reports import EvidenceError

        def test_bad(evidence):
            with pytest.raises(EvidenceError, match="not JSON-serializable"):
                evidence.add("pod", object())
            with pytest.raises(EvidenceError, match="lacks"):
                evidence.timeline("x", [{"t": 0, "pods": 1}])
            with pytest.raises(EvidenceError, match="no such file"):
                evidence.attach("/nonexistent/file.log")
        """
    )
    result, _ = run(pytester)
    result.assert_outcomes(passed=1)


def test_waiting_inside_a_test_prints_start_and_end_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="""
        from reports import waiting

        def test_wait():
            with waiting("deployment apiserver ready", timeout=120) as wait:
                wait.observe("1/1 ready")
        """
    )
    result, _ = run(pytester, "-s")
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "[wait] deployment apiserver ready (timeout 120s)" in output
    assert "[wait] deployment apiserver ready: done after" in output


def test_framework_imposed_run_id_and_report_dir_win(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pathlib import Path
        import reports

        def pytest_configure(config):
            # What fixtures/plugin.py does with its own resolved settings (CLI > env > profile).
            config.stash[reports.RUN_ID_KEY] = "fw-run"
            config.stash[reports.REPORT_DIR_KEY] = Path(str(config.rootpath)) / "fw-reports"
        """
    )
    pytester.makepyfile(test_a=_ONE_CHECK)
    result, base = run(pytester, "--geocube-run-id", "cli-run")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["geocube-report: *fw-reports (from the framework*"])
    assert (pytester.path / "fw-reports" / "fw-run" / "run.json").is_file()
    assert not base.exists()


def test_a_failure_is_masked_everywhere_and_keeps_its_message(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_configure(config):
            from reports.plugin import get_recorder

            get_recorder(config).add_secret("hunter2222")
        """
    )
    pytester.makepyfile(
        test_secret="""
        import pytest

        @pytest.mark.requirement("DB-AUTH")
        def test_login():
            print("connecting with hunter2222")
            assert False, "login refused for password hunter2222"
        """
    )
    result, base = run(pytester, "-rA")
    output = result.stdout.str() + result.stderr.str()
    assert "hunter2222" not in output
    result.stdout.fnmatch_lines(["*login refused for password ****"])
    run_dir = only_run_dir(base)
    assert all("hunter2222" not in p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    message = by_req(load(run_dir))["DB-AUTH"]["message"]
    assert message.startswith("AssertionError: login refused for password ****"), message
