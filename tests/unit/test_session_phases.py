"""The build is a phase of its own: progress in a CI log, its own time, no per-test timeout over it.

And self-test sessions (this very directory) never write sign-off artefacts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import fixtures.build
import fixtures.embedded
from fixtures.errors import ClusterError
from reports import console

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 2.5
CHECK_NEEDING_IMAGES = """
import pytest

@pytest.mark.requirement("PLAT-VERSION")
def test_needs_images(embedded_images_ready):
    pass
"""


def embedded_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, build: Callable[..., dict[str, str]], *args: str
) -> pytest.RunResult:
    """Run one check that needs the embedded images, with ``build`` standing in for the real build."""
    monkeypatch.setattr(fixtures.embedded, "build_and_push_images", build)
    monkeypatch.setattr(
        fixtures.build, "embedded_kubeconfig", lambda progress=None, fake_nodes=0: pytester.path / "kubeconfig"
    )
    pytester.makepyfile(test_check=CHECK_NEEDING_IMAGES)
    return pytester.runpytest("-p", "fixtures.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider", *args)


def test_a_slow_build_is_a_phase_outside_every_check_and_its_timeout(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def slow_build(progress: Callable[[str], None]) -> dict[str, str]:
        progress("building or reusing the Go binaries (simulated)")
        time.sleep(BUILD_SECONDS)
        return fixtures.embedded.predicted_images()

    monkeypatch.setattr(console, "HEARTBEAT", 0.5)
    report_dir = tmp_path / "runs"
    result = embedded_run(
        pytester, monkeypatch, slow_build,
        "-p", "timeout", "--timeout", "1", "--geocube-report-dir", str(report_dir), "--geocube-run-id", "slow-build",
    )  # fmt: skip
    # The check passes although the build took longer than its per-test timeout of 1 s.
    result.assert_outcomes(passed=1)
    log = result.stdout.str() + result.stderr.str()
    for line in ("[geocube] build +0s: started", "simulated", "[geocube] build +", "still running", "done in"):
        assert line in log, f"{line!r} missing from the CI-style log:\n{log}"
    record = json.loads((report_dir / "slow-build" / "run.json").read_text())
    (build,) = [p for p in record["phases"] if p["name"] == "build"]
    assert build["status"] == "passed" and build["duration"] >= BUILD_SECONDS
    (check,) = record["tests"]
    assert check["duration"] < 1, "the build's time must not be charged to the check"
    # Only one requirement of the catalogue ran: never a sign-off.
    assert record["verdict"] == "PARTIAL"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (ClusterError("go install failed (simulated). Fix: see the build log named above"), "go install failed"),
        (RuntimeError("mmdebstrap exited 1 (simulated)"), "RuntimeError: mmdebstrap exited 1 (simulated)"),
    ],
    ids=["harness-error", "any-other-error"],
)
def test_a_failed_build_is_an_error_result_in_every_format(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: Exception, said: str
) -> None:
    def broken_build(progress: Callable[[str], None]) -> dict[str, str]:
        raise error

    report_dir = tmp_path / "runs"
    result = embedded_run(
        pytester, monkeypatch, broken_build, "--geocube-report-dir", str(report_dir), "--geocube-run-id", "broken-build"
    )
    assert result.ret == 3  # ERROR
    run_dir = report_dir / "broken-build"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["verdict"] == "ERROR"
    assert record["session_errors"][0]["phase"] == "build"
    assert [(p["name"], p["status"]) for p in record["phases"]] == [("build", "failed")]
    for name in ("run.json", "report.md", "report.html", "junit.xml"):
        assert said in (run_dir / name).read_text(), name


def test_self_tests_leave_the_sign_off_reports_untouched() -> None:
    """`pytest tests/unit` loads the plugin through the root conftest, but is no acceptance run."""
    runs = REPO / "reports" / "runs"
    before = sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
    history = runs / "history.jsonl"
    history_before = history.read_bytes() if history.is_file() else None
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/unit/test_autoscaler_model.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "verdict" not in done.stdout, "a self-test session printed a sign-off verdict"
    after = sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
    assert after == before
    assert (history.read_bytes() if history.is_file() else None) == history_before


def test_a_template_error_stops_the_run_before_the_build_and_before_any_namespace(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_build(progress: Callable[[str], None]) -> dict[str, str]:
        raise AssertionError("the build ran although a template cannot be rendered")

    monkeypatch.setattr(fixtures.embedded, "build_and_push_images", no_build)
    monkeypatch.setattr(
        fixtures.build, "embedded_kubeconfig", lambda progress=None, fake_nodes=0: pytest.fail("cluster used")
    )
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '{{NOPE}}'}\n")
    pytester.makepyfile(
        test_check="""
        import pytest

        @pytest.mark.requirement("PLAT-VERSION")
        def test_needs_the_stack(deployed_stack):
            pass
        """
    )
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider", "--manifests-dir", str(manifests),
        "--geocube-report-dir", str(tmp_path / "runs"), "--geocube-run-id", "bad-template",
    )  # fmt: skip
    assert result.ret == 3
    record = json.loads((tmp_path / "runs" / "bad-template" / "run.json").read_text())
    assert [e["phase"] for e in record["session_errors"]] == ["render"]
    assert "NOPE" in record["session_errors"][0]["message"]
    assert record["phases"] == [], "nothing was built nor deployed"


def test_a_conftest_that_decides_the_parameters_is_validated_by_its_own_fixtures(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """The early render uses the settings; a conftest overriding a decision fixture renders something else."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '{{NOPE}}'}\n")
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def stack_params():
            return {"NOPE": "given by the conftest"}
        """
    )
    pytester.makepyfile(
        test_check="""
        import pytest

        @pytest.mark.requirement("PLAT-VERSION")
        def test_renders(rendered_stack):
            assert rendered_stack.objects[0].body["data"]["a"] == "given by the conftest"
        """
    )
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider", "--manifests-dir", str(manifests),
        "--geocube-report-dir", str(tmp_path / "runs"),
    )  # fmt: skip
    result.assert_outcomes(passed=1)
