"""On a live stack (--existing-namespace) only read-only checks run unless --allow says more; never silently.

The impacts come from the real catalogue (suites/requirements.toml); the fake checks need no cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

CHECKS = """
import pytest

@pytest.mark.requirement("DB-AUTH")          # read-only
def test_auth():
    pass

@pytest.mark.requirement("DB-PRIVILEGES")    # test-data
def test_privileges():
    pass

@pytest.mark.requirement("DB-CONN-LIMIT")    # disruptive
def test_connection_limit():
    pass
"""


def live_run(pytester: pytest.Pytester, *options: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    pytester.makepyfile(test_db=CHECKS)
    report_dir = pytester.path / "runs"
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider", "--existing-namespace", "prod",
        "--geocube-report-dir", str(report_dir), "--geocube-run-id", "live", *options,
    )  # fmt: skip
    record = json.loads((report_dir / "live" / "run.json").read_text())
    return result, record


def statuses(record: dict[str, Any]) -> dict[str, str]:
    return {t["requirement_id"]: t["status"] for t in record["tests"]}


def test_by_default_only_read_only_checks_run_and_the_rest_is_named(pytester: pytest.Pytester) -> None:
    result, record = live_run(pytester)
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == 0  # PARTIAL: every selected check passed
    result.stdout.fnmatch_lines(
        ["geocube-impact: live stack prod: runs the read-only checks; the test-data and disruptive ones are left out*"]
    )
    assert statuses(record) == {"DB-AUTH": "passed", "DB-PRIVILEGES": "deselected", "DB-CONN-LIMIT": "deselected"}
    assert record["verdict"] == "PARTIAL"
    assert record["verdict_reasons"][1:3] == [
        "1 requirement(s) not run, on the live stack prod: impact test-data (opt in with --allow test-data): "
        "DB-PRIVILEGES",
        "1 requirement(s) not run, on the live stack prod: impact disruptive (opt in with --allow disruptive): "
        "DB-CONN-LIMIT",
    ]
    assert record["inventory"]["impact"].startswith("live stack prod: runs the read-only checks")
    markdown = (pytester.path / "runs" / "live" / "report.md").read_text()
    assert (
        "| DB-CONN-LIMIT | database | disruptive: fills the server's connections from a pod of its own: the stack's "
        "clients get 'too many clients' meanwhile | NOT RUN on the live stack prod: impact disruptive" in markdown
    )


def test_allow_opts_in_to_more_impact(pytester: pytest.Pytester) -> None:
    result, record = live_run(pytester, "--allow", "test-data")
    result.assert_outcomes(passed=2, deselected=1)
    assert statuses(record)["DB-PRIVILEGES"] == "passed"
    assert statuses(record)["DB-CONN-LIMIT"] == "deselected"


def test_allow_everything_runs_everything(pytester: pytest.Pytester) -> None:
    result, record = live_run(pytester, "--allow", "disruptive,test-data")
    result.assert_outcomes(passed=3)
    assert set(statuses(record).values()) == {"passed"}


def test_a_disposable_stack_runs_every_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_db=CHECKS)
    result = pytester.runpytest("-p", "fixtures.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider", "--co")
    result.stdout.fnmatch_lines(["geocube-impact: every check runs*", "*3 tests collected*"])


def test_an_unknown_impact_is_one_clear_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_db=CHECKS)
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider", "--existing-namespace", "prod",
        "--allow", "everything",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'allow' = 'everything'*(allowed: test-data, disruptive)*"])


def test_validating_a_deployed_stack_needs_no_go_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Geocube's SQL comes from the Go module cache; a stack that is only validated is rendered without it."""
    import geocube_stack.params
    from fixtures.config import AccessMode, Messaging, Storage, resolve
    from fixtures.stack import StackChoice, stack_parameters

    def no_go() -> None:
        raise AssertionError("the Go module was read")

    monkeypatch.setattr(geocube_stack.params, "geocube_module", no_go)
    settings = resolve({"geocube_existing_namespace": "prod", "geocube_kubeconfig": str(tmp_path / "kc")}, {},
                       base_dir=Path(__file__).resolve().parents[2], cwd=tmp_path)  # fmt: skip
    choice = StackChoice(Messaging.PGQUEUE, Storage.GS, AccessMode.PORT_FORWARD, embedded=False)
    params = stack_parameters(settings, {}, choice, namespace="prod")
    assert params["GEOCUBE_CREATE_SQL"].strip() == geocube_stack.params.SQL_NOT_READ
    assert params["PGQUEUE_CREATE_TABLE_SQL"].strip() == geocube_stack.params.SQL_NOT_READ
