"""Every verdict and the exit status it gives, through small fake suites run with pytester (no cluster).

SIGN-OFF PASS 0, PARTIAL 0, FAIL 1, INCOMPLETE 2, ERROR 3 (``reports.model.EXIT_CODES``), the same from
``geocube-acceptance report RUN_DIR``, which says 4 for bad options. A session without acceptance checks
writes no report and no history and keeps pytest's own exit status. History compares only runs of the
same cluster, profile and selection; known defects are reported observed or expected-but-not-observed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path
from typing import Any

import pytest

from reports import cli, history
from tests.unit.fake_suite import PLUGIN_ARGS, check, load, module, with_catalogue

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str, run_id: str = "run") -> tuple[pytest.RunResult, Path]:
    """Run the fake suite with the report plugin; return the result and its run directory."""
    base = pytester.path / "out"
    result = pytester.runpytest(*PLUGIN_ARGS, "--geocube-report-dir", str(base), "--geocube-run-id", run_id, *args)
    return result, base / run_id


def judged_run(
    pytester: pytest.Pytester, *args: str, exit_status: int, verdict: str
) -> tuple[pytest.RunResult, Path, dict[str, Any]]:
    """Run the fake suite; check that pytest exits with ``exit_status`` and the record says ``verdict`` and that
    status; return the result, the run directory and its record."""
    __tracebackhide__ = True
    result, run_dir = run(pytester, *args)
    assert result.ret == exit_status
    data = load(run_dir)
    assert (data["verdict"], data["exit_status"]) == (verdict, exit_status)
    return result, run_dir, data


# -- a fake suite of two areas: database (two requirements) and messaging (one) --------------------------

CATALOGUE = ("DB-CONN-LIMIT", "DB-PERMISSIONS", "MSG-QUEUES", "STO-GCS-ONLY")
NOT_APPLICABLE = {"STO-GCS-ONLY": "only with storage gs"}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    with_catalogue(pytester, *CATALOGUE, not_applicable=NOT_APPLICABLE)
    pytester.makepyfile(
        test_db=module(
            check("test_conn_limit", "DB-CONN-LIMIT", area="database"),
            check("test_permissions", "DB-PERMISSIONS", area="database"),
        ),
        test_msg=module(check("test_queues", "MSG-QUEUES", area="messaging")),
    )
    return pytester


def test_every_applicable_requirement_passed_is_sign_off_pass_exit_0(suite: pytest.Pytester) -> None:
    result, run_dir, data = judged_run(suite, exit_status=0, verdict="PASS")
    result.assert_outcomes(passed=3)
    assert data["verdict_label"] == "SIGN-OFF PASS"
    assert data["verdict_reasons"] == [
        "all 3 applicable requirements ran and passed; not applicable to this profile: "
        "STO-GCS-ONLY (only with storage gs)"
    ]
    result.stdout.fnmatch_lines(["verdict: SIGN-OFF PASS (exit status 0)"])
    assert "## Verdict: ✅ SIGN-OFF PASS" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize(
    ("selection", "deselected", "gap"),
    [
        pytest.param(
            ["test_db.py"], 0, "1 requirement(s) not collected (outside the paths given): MSG-QUEUES", id="path"
        ),
        pytest.param(["-k", "not queues"], 1, "1 requirement(s) deselected (-k/-m): MSG-QUEUES", id="-k"),
        pytest.param(["-m", "database"], 1, "1 requirement(s) deselected (-k/-m): MSG-QUEUES", id="-m"),
    ],
)
def test_a_selection_leaving_requirements_out_is_partial_exit_0(
    suite: pytest.Pytester, selection: list[str], deselected: int, gap: str
) -> None:
    result, run_dir, data = judged_run(suite, *selection, exit_status=0, verdict="PARTIAL")
    result.assert_outcomes(passed=2, deselected=deselected)
    assert data["verdict_reasons"] == ["all 2 selected checks passed, but this is not a sign-off:", gap]
    result.stdout.fnmatch_lines(["verdict: PARTIAL (exit status 0)", f"  - {gap}"])
    markdown = (run_dir / "report.md").read_text()
    assert "## Verdict: ◐ PARTIAL" in markdown and f"- {gap}" in markdown
    left_out = "NOT SELECTED (outside the paths given)" if deselected == 0 else "DESELECTED"
    assert f"| MSG-QUEUES | messaging | - | {left_out} |" in markdown


def test_an_incapable_environment_is_incomplete_exit_2(pytester: pytest.Pytester) -> None:
    with_catalogue(pytester, "AS-BACKLOG", "AS-MIN-REPLICAS")
    pytester.makepyfile(
        test_scaling=module(
            "import reports.plugin",
            check(
                "test_backlog",
                "AS-BACKLOG",
                'reports.plugin.incapable("the Pub/Sub emulator exposes no backlog metric")',
            ),
            check("test_min_replicas", "AS-MIN-REPLICAS"),
        )
    )
    result, _, data = judged_run(pytester, exit_status=2, verdict="INCOMPLETE")
    result.assert_outcomes(passed=1, skipped=1)
    assert data["verdict_reasons"] == ["1 environment not capable: AS-BACKLOG"]
    [backlog] = [t for t in data["tests"] if t["requirement_id"] == "AS-BACKLOG"]
    assert backlog["skip_reason"] == "ENVIRONMENT-LIMITATION: the Pub/Sub emulator exposes no backlog metric"
    result.stdout.fnmatch_lines(["verdict: INCOMPLETE (exit status 2)"])


def test_a_failed_check_is_fail_exit_1(pytester: pytest.Pytester) -> None:
    with_catalogue(pytester, "DB-CONN-LIMIT", "DB-PERMISSIONS")
    pytester.makepyfile(
        test_db=module(
            check("test_conn_limit", "DB-CONN-LIMIT", 'assert 87 == 101, "53300 appeared at connection 87"'),
            check("test_permissions", "DB-PERMISSIONS"),
        )
    )
    result, _, data = judged_run(pytester, exit_status=1, verdict="FAIL")
    result.assert_outcomes(passed=1, failed=1)
    assert data["verdict_reasons"] == ["1 failed: DB-CONN-LIMIT"]
    result.stdout.fnmatch_lines(["verdict: FAIL (exit status 1)"])


def test_a_check_passing_only_on_rerun_is_flaky_and_fail_exit_1(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures", reason="pytest-rerunfailures provides the reruns")
    with_catalogue(pytester, "MSG-EVENTS-DELIVERY")
    pytester.makepyfile(
        test_msg="""
        import pytest

        calls = []

        @pytest.mark.requirement("MSG-EVENTS-DELIVERY")
        def test_delivery():
            calls.append(1)
            assert len(calls) > 1, "delivered 199 of 200 events"
        """
    )
    # Exit status 1 where pytest alone would say 0: the rerun passed.
    result, _, data = judged_run(pytester, "--reruns", "1", exit_status=1, verdict="FAIL")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    assert data["verdict_reasons"] == ["1 flaky: MSG-EVENTS-DELIVERY"]
    assert data["tests"][0]["status"] == "flaky"


def test_a_check_of_a_requirement_missing_from_the_catalogue_is_fail_exit_1(pytester: pytest.Pytester) -> None:
    with_catalogue(pytester, "DB-CONN-LIMIT")
    pytester.makepyfile(test_db=module(check("test_conn_limit", "DB-CONN-LIMIT"), check("test_typo", "DB-CONN-LIMTI")))
    result, _, data = judged_run(pytester, exit_status=1, verdict="FAIL")
    result.assert_outcomes(passed=2)
    [reason] = data["verdict_reasons"]
    assert reason.startswith("check(s) verify requirement(s) missing from the catalogue: DB-CONN-LIMTI")


# -- ERROR: the run could not perform its checks ---------------------------------------------------------

RENDER_ERROR = (
    "render: missing {{DB_HOSTNAME}} at apiserver/config.yaml:4\n"
    "Fix: pass --set DB_HOSTNAME=VALUE or the [params] table of a --profile."
)
ONE_LINE = " ".join(RENDER_ERROR.splitlines())  # the verdict's reason line: the whole message, joined
FIRST_LINE = RENDER_ERROR.splitlines()[0]  # JUnit's error message attribute; the element's text is all of it
STOPPERS = {
    # A fixture of a suite (or a plugin) ending the session: recorded as the session's error.
    "pytest.exit": f"pytest.exit({RENDER_ERROR!r}, returncode=4)",
    # The framework's way: the phase that failed is named.
    "abort": f"reports.plugin.abort(pytestconfig, 'render', {RENDER_ERROR!r})",
}


@pytest.mark.parametrize(("stopper", "phase"), [("pytest.exit", "session"), ("abort", "render")])
def test_a_session_error_is_error_exit_3_in_every_format(pytester: pytest.Pytester, stopper: str, phase: str) -> None:
    with_catalogue(pytester, "PLAT-ONE", "PLAT-TWO")
    pytester.makepyfile(
        test_stack=module(
            "import reports.plugin",
            f"""
            @pytest.fixture(scope="session")
            def rendered_stack(pytestconfig):
                {STOPPERS[stopper]}
            """,
            check("test_one", "PLAT-ONE", args="rendered_stack"),
            check("test_two", "PLAT-TWO", args="rendered_stack"),
        )
    )
    result, run_dir, data = judged_run(pytester, exit_status=3, verdict="ERROR")
    result.stdout.fnmatch_lines(["verdict: ERROR (exit status 3)", f"{phase} failed:", "    Fix: pass --set*"])
    assert data["session_errors"] == [{"phase": phase, "message": RENDER_ERROR}]
    assert data["verdict_reasons"] == [
        f"{phase} failed: {ONE_LINE}",
        "2 check(s) could not run because of it: PLAT-ONE, PLAT-TWO",
    ]
    assert {t["status"] for t in data["tests"]} == {"unrun"}

    markdown = (run_dir / "report.md").read_text()
    assert f"### The run stopped: {phase} failed" in markdown
    assert RENDER_ERROR in markdown
    html = (run_dir / "report.html").read_text()
    assert f'id="session-error-{phase}"' in html and escape(RENDER_ERROR) in html

    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert suite.attrib["errors"] == "1" and suite.attrib["tests"] == "3"
    [case] = [c for c in suite.iter("testcase") if c.attrib["classname"] == "geocube-acceptance.session"]
    assert case.attrib["name"] == phase
    error = case.find("error")
    assert error is not None
    assert error.attrib["type"] == "session" and error.attrib["message"] == FIRST_LINE
    assert error.text == RENDER_ERROR


# -- geocube-acceptance report: the same exit status as the run -----------------------------------------


@pytest.mark.parametrize(
    ("body", "verdict", "code"),
    [
        ("pass", "PASS", 0),
        ("assert False, 'refused at connection 87'", "FAIL", 1),
        (f"pytest.exit({RENDER_ERROR!r}, returncode=4)", "ERROR", 3),
    ],
    ids=["pass", "fail", "error"],
)
def test_report_cli_exits_as_the_run_did(pytester: pytest.Pytester, body: str, verdict: str, code: int) -> None:
    with_catalogue(pytester, "DB-CONN-LIMIT")
    pytester.makepyfile(test_db=module(check("test_conn_limit", "DB-CONN-LIMIT", body)))
    _, run_dir, _ = judged_run(pytester, exit_status=code, verdict=verdict)
    assert cli.main(["report", str(run_dir)]) == code
    assert cli.main([str(run_dir)]) == code  # as geocube_acceptance.cli passes it after its own sub-command
    assert load(run_dir)["verdict"] == verdict


def test_report_cli_bad_options_exit_4(suite: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    result, run_dir = run(suite)
    assert result.ret == 0
    capsys.readouterr()
    assert cli.main(["report", str(run_dir), "--no-such-option"]) == cli.EXIT_USAGE == 4
    assert cli.main(["report"]) == 4  # no run directory
    assert cli.main(["report", str(run_dir), "--comment", "fine"]) == 4  # a comment needs an approver
    assert cli.main(["report", str(run_dir), "--approver", " "]) == 4
    assert cli.main(["report", str(suite.path / "no-such-run")]) == 4
    (suite.path / "broken").mkdir()
    (suite.path / "broken" / "run.json").write_text("{not json")
    assert cli.main(["report", str(suite.path / "broken")]) == 4
    errors = capsys.readouterr().err
    assert "--comment needs --approver" in errors and "no run record at" in errors
    assert cli.main(["report", str(run_dir)]) == 0  # the run directory itself was fine


# -- self-tests are not acceptance runs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("def test_ok():\n    pass\n", pytest.ExitCode.OK),
        ("def test_broken():\n    assert False\n", pytest.ExitCode.TESTS_FAILED),
        # As an acceptance check this would be INCOMPLETE (2); a self-test keeps pytest's 0.
        (
            "import reports.plugin\n\ndef test_incapable():\n    reports.plugin.incapable('no cluster here')\n",
            pytest.ExitCode.OK,
        ),
        ("def helper():\n    pass\n", pytest.ExitCode.NO_TESTS_COLLECTED),
    ],
    ids=["passed", "failed", "incapable", "nothing-collected"],
)
def test_a_session_without_requirement_markers_writes_nothing_and_keeps_pytest_exit_status(
    pytester: pytest.Pytester, source: str, code: pytest.ExitCode
) -> None:
    with_catalogue(pytester, "DB-CONN-LIMIT")  # the framework hands it to self-test sessions too
    pytester.makepyfile(test_self=source)
    result, run_dir = run(pytester)
    assert result.ret == code
    assert not run_dir.parent.exists()
    assert list(pytester.path.rglob("run.json")) == [] and list(pytester.path.rglob(history.HISTORY_FILE)) == []
    assert "geocube sign-off report" not in result.stdout.str()
    assert "verdict:" not in result.stdout.str()


# -- history: only comparable runs are compared --------------------------------------------------------


def test_history_compares_only_runs_of_the_same_cluster_profile_and_selection(suite: pytest.Pytester) -> None:
    run(suite, run_id="run-a")
    run(suite, "-k", "not queues", run_id="run-b")
    _, run_c = run(suite, run_id="run-c")
    base = run_c.parent
    a, b, c = (load(base / name)["history"] for name in ("run-a", "run-b", "run-c"))
    assert a["previous_run_id"] is None and a["incomparable_runs"] == 0
    assert a["key"]["selection"] == "all applicable requirements"
    assert b["previous_run_id"] is None and b["incomparable_runs"] == 1
    assert b["key"]["selection"] == "DB-CONN-LIMIT,DB-PERMISSIONS"
    assert c["previous_run_id"] == "run-a" and c["incomparable_runs"] == 1
    assert c["key"] == a["key"]
    # The duration trend follows comparable runs only: run-b's queue check was deselected, run-a's ran.
    assert len(c["durations"]["test_msg.py::test_queues"]) == 2
    entries, corrupt = history.read(base / history.HISTORY_FILE)
    assert [e["run_id"] for e in entries] == ["run-a", "run-b", "run-c"] and corrupt == 0
    assert entries[1]["key"] == b["key"]
    markdown = (run_c / "report.md").read_text()
    assert "Previous comparable run: run-a (verdict PASS)" in markdown
    assert "1 earlier run(s) of another cluster, profile or selection not compared." in markdown


# -- known defects -------------------------------------------------------------------------------------

EVIDENCE_LINE = (
    "Rollback.DeletePendingRemoteContainers.opSubFncDeleteContainer[c1].failed to remove file: "
    "remove /data/c1.tif: no such file or directory"
)


def test_known_defects_observed_with_evidence_and_expected_but_not_observed(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import re

        import pytest
        from reports.defects import DefectEntry
        from reports.model import Requirement
        from reports.plugin import get_recorder

        def entry(defect_id, requirement, evidence, affects):
            return DefectEntry(
                id=defect_id, title=f"{defect_id} title", requirement=requirement, versions=("1.0.3",),
                affects=affects, evidence=re.compile(evidence), explanation="why", reference="upstream issue",
            )

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            recorder = get_recorder(config)
            recorder.set_catalogue([
                Requirement("STO-CANCELLED-JOBS", "storage", "a cancelled job rolls back"),
                Requirement("DB-CONN-LIMIT", "database", "connections above the limit are refused"),
            ])
            recorder.set_defect_register(
                [
                    entry("GEOCUBE-ROLLBACK", "STO-CANCELLED-JOBS",
                          r"failed to remove file: remove [^:]+: no such file or directory", {"storage": ("local",)}),
                    entry("GEOCUBE-CONN-LEAK", "DB-CONN-LIMIT", r"connection leak", {"storage": ("local",)}),
                    entry("GEOCUBE-GS-ONLY", "DB-CONN-LIMIT", r"gs leak", {"storage": ("gs",)}),
                ],
                version="1.0.3",
                profile={"messaging": "pgqueue", "storage": "local"},
            )
        """
    )
    pytester.makepyfile(
        test_defects=f"""
        import pytest

        @pytest.mark.requirement("STO-CANCELLED-JOBS")
        def test_cancel(known_defects):
            log = "state ABORTED\\n{EVIDENCE_LINE}\\nWait for user command"
            assert known_defects.recognise("an unrelated failure") is None
            defect = known_defects.recognise(log)
            assert defect is not None and defect.id == "GEOCUBE-ROLLBACK"

        @pytest.mark.requirement("DB-CONN-LIMIT")
        def test_conn_limit(known_defects):
            assert known_defects.recognise("refused with 53300 at connection 101") is None
        """
    )
    result, run_dir = run(pytester)
    result.assert_outcomes(passed=2)
    data = load(run_dir)
    defects = {d["id"]: d for d in data["known_defects"]}
    assert set(defects) == {"GEOCUBE-ROLLBACK", "GEOCUBE-CONN-LEAK"}  # GS-ONLY: not expected, not observed
    rollback = defects["GEOCUBE-ROLLBACK"]
    assert rollback["observed"] is True and rollback["expected"] is True
    assert rollback["evidence"] == EVIDENCE_LINE
    assert rollback["nodeid"] == "test_defects.py::test_cancel"
    assert rollback["requirement_id"] == "STO-CANCELLED-JOBS"
    leak = defects["GEOCUBE-CONN-LEAK"]
    assert leak["observed"] is False and leak["expected"] is True and leak["evidence"] is None
    assert leak["nodeid"] == "test_defects.py::test_conn_limit"
    markdown = (run_dir / "report.md").read_text()
    assert "## Known defects observed" in markdown
    assert "### GEOCUBE-ROLLBACK — observed" in markdown and EVIDENCE_LINE in markdown
    assert "### GEOCUBE-CONN-LEAK — expected on this profile but NOT observed" in markdown
    result.stdout.fnmatch_lines(
        ["known defect GEOCUBE-ROLLBACK: observed", "known defect GEOCUBE-CONN-LEAK: NOT observed*"]
    )


def test_a_suite_module_that_fails_to_import_is_still_an_acceptance_run(pytester: pytest.Pytester) -> None:
    """No check could be collected, so no requirement marker was seen: the suites' folder says it is one."""
    pytester.makeconftest(
        """
        from pathlib import Path

        from reports.plugin import get_recorder

        def pytest_configure(config):
            get_recorder(config).acceptance_root = (Path(__file__).parent / "acceptance").resolve()
        """
    )
    pytester.mkpydir("acceptance")
    (pytester.path / "acceptance" / "test_broken.py").write_text("import no_such_module_of_geocube\n")
    _, _, data = judged_run(pytester, "acceptance", exit_status=1, verdict="FAIL")  # a collection error
    assert "no_such_module_of_geocube" in data["collection_errors"][0]["message"]


def test_collect_only_lists_checks_without_judging_them(pytester: pytest.Pytester) -> None:
    with_catalogue(pytester, "DB-AUTH")
    pytester.makepyfile(test_db=module(check("test_auth", "DB-AUTH")))
    result, run_dir = run(pytester, "--collect-only")
    assert result.ret == 0
    assert not run_dir.exists()
    assert not (run_dir.parent / history.HISTORY_FILE).exists()
