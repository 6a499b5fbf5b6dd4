"""The ``geocube-acceptance`` entry point: dispatch, delegation, the run command and the janitor."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fixtures.labels import EXPIRES_LABEL, MANAGED_BY_LABEL, RUN_ID_LABEL
from geocube_acceptance import cli
from tests.unit.fake_kube import FakeNamespaces, fake_kube


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, returns: int = 0) -> list[list[str]]:
    calls: list[list[str]] = []
    module = ModuleType(name)

    def main(argv: list[str]) -> int:
        calls.append(argv)
        return returns

    module.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USAGE
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("cluster", "run", "report", "gc"):
        assert f"geocube-acceptance {command}" in out
    for verdict in ("SIGN-OFF PASS", "PARTIAL", "FAIL", "INCOMPLETE", "ERROR"):
        assert verdict in out  # the exit-status table


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["deploy"]) == cli.EXIT_USAGE
    assert "unknown command 'deploy'" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "module"), [("cluster", "localcluster.cli"), ("report", "reports.cli")])
def test_delegation_passes_the_rest_verbatim(monkeypatch: pytest.MonkeyPatch, command: str, module: str) -> None:
    calls = fake_module(monkeypatch, module, returns=3)
    assert cli.main([command, "status", "--purge", "x"]) == 3
    assert calls == [["status", "--purge", "x"]]


def test_missing_delegate_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "reports.cli", None)  # import raises ImportError
    assert cli.main(["report", "runs/x"]) == cli.EXIT_USAGE
    assert "geocube-acceptance report: unavailable (reports.cli.main cannot be loaded" in capsys.readouterr().err


@pytest.fixture
def pytest_main(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def main(args: list[str], plugins: list[object] | None = None) -> int:
        assert args[:2] == ["-p", "fixtures.plugin"]  # the suite's plugin, for the suites or the user's paths
        calls.append(args[2:])
        return 1

    monkeypatch.setattr(pytest, "main", main)
    return calls


def test_run_defaults_to_the_suites(pytest_main: list[list[str]]) -> None:
    assert cli.main(["run", "-x", "-m", "database"]) == 1
    assert pytest_main == [[str(cli.SUITES), "-x", "-m", "database"]]


def test_run_keeps_explicit_paths(
    pytest_main: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites" / "autoscaling").mkdir(parents=True)
    (tmp_path / "suites" / "autoscaling" / "test_x.py").touch()
    cli.main(["run", "suites/autoscaling", "-q"])
    cli.main(["run", "suites/autoscaling/test_x.py::test_y"])  # a node id of an existing file
    cli.main(["run", "suites/nowhere"])  # not a path: a typo is left for pytest to report, with the suites
    assert pytest_main[0] == ["suites/autoscaling", "-q"]
    assert pytest_main[1] == ["suites/autoscaling/test_x.py::test_y"]
    assert pytest_main[2] == [str(cli.SUITES), "suites/nowhere"]


def test_run_does_not_take_option_values_for_paths(
    pytest_main: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("admin.conf", "templates", "p.toml"):
        (tmp_path / name).touch()
    args = [
        "--kubeconfig",
        "admin.conf",
        "--geocube-manifests-dir",
        "templates",
        "--geocube-profile",
        "p.toml",
        "-k",
        "x",
    ]
    cli.main(["run", *args])
    assert pytest_main == [[str(cli.SUITES), *args]]


# --------------------------------------------------------------------------------------------------
# gc
# --------------------------------------------------------------------------------------------------


def namespace(name: str, expires: datetime) -> dict[str, Any]:
    labels = {
        MANAGED_BY_LABEL: "geocube-acceptance",
        RUN_ID_LABEL: "r1",
        EXPIRES_LABEL: str(int(expires.timestamp())),
    }
    return {"metadata": {"name": name, "labels": labels}, "status": {"phase": "Active"}}


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeNamespaces, list[tuple[Path | None, str | None]]]:
    now = datetime.now(UTC)
    core = FakeNamespaces(
        [
            namespace("geocube-e2e-r1-old", now - timedelta(hours=2)),
            namespace("geocube-e2e-r1-new", now + timedelta(hours=2)),
        ]
    )
    targets: list[tuple[Path | None, str | None]] = []

    def connect(kubeconfig: Path | None, context: str | None) -> Any:
        targets.append((kubeconfig, context))
        return fake_kube(core)

    monkeypatch.setattr(cli, "_connect", connect)
    return core, targets


def test_gc_dry_run_lists_decisions_and_deletes_nothing(
    fake_cluster: tuple[FakeNamespaces, list[Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    core, targets = fake_cluster
    assert cli.main(["gc", "--dry-run", "--kubeconfig", str(tmp_path / "kc"), "--context", "ci"]) == 0
    out = capsys.readouterr().out
    assert "would delete geocube-e2e-r1-old  (expired 2h00m ago)" in out
    assert "kept         geocube-e2e-r1-new  (expires in 1h59m)" in out
    assert [c for c in core.calls if c[0] == "delete"] == []
    assert targets == [(tmp_path / "kc", "ci")]


def test_gc_deletes_expired_namespaces(fake_cluster: tuple[FakeNamespaces, list[Any]]) -> None:
    core, _ = fake_cluster
    assert cli.main(["gc"]) == 0
    assert [c for c in core.calls if c[0] == "delete"] == [("delete", "geocube-e2e-r1-old")]


def test_gc_warns_about_an_unknown_variable_and_goes_on(
    fake_cluster: tuple[FakeNamespaces, list[Any]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEOCUBE_CONTXT", "typo")
    assert cli.main(["gc"]) == 0
    assert "GEOCUBE_CONTXT is not a geocube setting and is ignored; did you mean GEOCUBE_CONTEXT?" in (
        capsys.readouterr().err
    )


def test_gc_reports_bad_configuration(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCUBE_TIMEOUTS_WAIT", "soon")
    assert cli.main(["gc"]) == cli.EXIT_USAGE
    assert "GEOCUBE_TIMEOUTS_WAIT" in capsys.readouterr().err


def test_gc_without_a_running_cluster(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_connect", lambda kubeconfig, context: None)
    assert cli.main(["gc"]) == 0
    assert "nothing to collect" in capsys.readouterr().out


def test_gc_names_an_unreadable_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gc", "--kubeconfig", str(tmp_path / "absent")]) == cli.EXIT_USAGE
    assert f"kubeconfig {tmp_path / 'absent'} cannot be read" in capsys.readouterr().err
