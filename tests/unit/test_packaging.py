"""The package: the pytest11 entry point, ``--version``, real ``--help``, a wheel holding suites and manifests."""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from geocube_acceptance import cli, locations, pytest_plugin

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
INNER = ("-p", "no:asyncio", "-p", "no:cacheprovider")
PLUGIN = "geocube_acceptance.pytest_plugin"


def command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``geocube-acceptance ARGS`` in a child process started in ``cwd`` (the checkout on its path)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from geocube_acceptance.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


# --------------------------------------------------------------------------------------------------
# The pytest11 entry point
# --------------------------------------------------------------------------------------------------


def test_the_entry_point_is_declared_and_loads() -> None:
    declared = PYPROJECT["project"]["entry-points"]["pytest11"]
    # Named after its module: `-p geocube_acceptance.pytest_plugin` finds it registered, never registers it twice.
    assert declared == {PLUGIN: PLUGIN}
    loaded = importlib.metadata.EntryPoint(PLUGIN, declared[PLUGIN], "pytest11").load()
    assert loaded is pytest_plugin
    assert callable(loaded.pytest_load_initial_conftests)


def test_an_unrelated_project_does_not_get_the_suites_plugin(pytester: pytest.Pytester) -> None:
    """Installed in a shared venv, the entry point adds no option, header line, fixture or report to others' runs."""
    pytester.makepyfile("def test_unrelated():\n    assert 1 + 1 == 3\n")
    result = pytester.runpytest("-p", PLUGIN, *INNER)
    result.assert_outcomes(failed=1)
    for line in ("geocube settings", "geocube-report", "geocube-impact", "sign-off"):
        assert line not in result.stdout.str()  # the header and summary of an acceptance run
    assert not pytester.path.joinpath("reports").exists()
    assert "fixtures.plugin" not in [name for name, _ in pytester.parseconfig().pluginmanager.list_name_plugin()]
    usage = pytester.runpytest("-p", PLUGIN, *INNER, "--kubeconfig", "x")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR


def test_a_run_of_the_suites_loads_the_plugin_once_however_it_is_asked(pytester: pytest.Pytester) -> None:
    """Entry point, ``-p fixtures.plugin`` (the CLI) and the checkout's conftest together: no double registration."""
    suites = str(locations.suites_dir())
    for asked in ([], ["-p", "fixtures.plugin"]):
        # A process per run: collecting the real suites imports google-cloud-pubsub, whose protobuf descriptors
        # cannot be registered twice in one process (pytester's in-process runs re-import it).
        result = pytester.runpytest_subprocess("-p", PLUGIN, *asked, "-p", "no:cacheprovider", suites, "--co", "-q")
        assert result.ret == pytest.ExitCode.OK, result.stderr.str()
        result.stdout.fnmatch_lines(["*suites/database/test_database.py::*"])
        assert "already registered" not in result.stderr.str()


def test_pyargs_and_testpaths_target_the_suites(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig("--pyargs", "suites.database")
    assert pytest_plugin.targets_suites(config)
    assert not pytest_plugin.targets_suites(pytester.parseconfig("--pyargs", "suitesx"))
    assert not pytest_plugin.targets_suites(pytester.parseconfig(str(pytester.path)))
    pytester.makeini("[pytest]\ntestpaths = elsewhere\n")
    assert not pytest_plugin.targets_suites(pytester.parseconfig())


# --------------------------------------------------------------------------------------------------
# --version and --help
# --------------------------------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    try:
        expected = importlib.metadata.version("geocube-acceptance")
    except importlib.metadata.PackageNotFoundError:
        expected = "unknown"
    assert capsys.readouterr().out.startswith(f"geocube-acceptance {expected}")


def test_run_help_is_pytests_help_with_the_geocube_group(tmp_path: Path) -> None:
    result = command("run", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: geocube-acceptance run [options]")
    assert "Geocube acceptance (precedence:" in result.stdout
    assert "--kubeconfig" in result.stdout
    assert "Geocube sign-off report" in result.stdout


@pytest.mark.parametrize("subcommand", ["cluster", "report", "gc"])
def test_every_subcommand_has_its_own_help(subcommand: str, tmp_path: Path) -> None:
    result = command(subcommand, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: geocube-acceptance {subcommand} ")


# --------------------------------------------------------------------------------------------------
# Outside a checkout: the packaged pytest configuration, a chosen rootdir, outputs in the current directory
# --------------------------------------------------------------------------------------------------


def test_outside_a_checkout_run_uses_the_packaged_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locations, "checkout", lambda: None)
    ini = str(locations.ACCEPTANCE_INI)
    # The suites: rooted where they are installed (node ids suites/<area>/... as in a checkout), cache here.
    suites = str(locations.suites_dir() / "database")
    rooted = ["--rootdir", str(locations.ROOT), "-o", f"cache_dir={tmp_path / '.pytest_cache'}"]
    assert cli._packaged_config([suites, "-x"]) == ["-c", ini, *rooted]
    assert cli._packaged_config(["--config-file=mine.ini", suites]) == rooted
    assert cli._packaged_config([suites, "-p", "no:cacheprovider"]) == ["-c", ini, *rooted[:2]]
    # Other checks: rooted here.
    (tmp_path / "test_mine.py").write_text("")
    assert cli._packaged_config(["test_mine.py"]) == ["-c", ini, "--rootdir", str(tmp_path)]
    assert cli._packaged_config(["-c", "mine.ini", "--rootdir=/r"]) == []  # the user's choices win
    assert locations.checkout() is None
    # Outputs never go to the installed folder.
    assert locations.output_base(locations.ROOT, tmp_path) == tmp_path
    assert locations.output_base(tmp_path / "elsewhere", tmp_path) == tmp_path / "elsewhere"


def test_in_a_checkout_run_uses_pyproject() -> None:
    assert locations.checkout() == ROOT
    assert cli._packaged_config([]) == []


def test_the_packaged_configuration_is_pyprojects() -> None:
    """acceptance.ini (outside a checkout) and [tool.pytest.ini_options] (in it) configure the suites alike."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(locations.ACCEPTANCE_INI, encoding="utf-8")

    def normalised(value: Any) -> list[str]:
        if isinstance(value, list):
            return [str(v) for v in value]
        if isinstance(value, bool):
            return [str(value).lower()]
        return str(value).split("\n") if "\n" in str(value) else [str(value)]

    packaged = {key: [line for line in normalised(value) if line] for key, value in ini["pytest"].items()}
    packaged["addopts"] = packaged["addopts"][0].split()
    expected = {k: normalised(v) for k, v in PYPROJECT["tool"]["pytest"]["ini_options"].items() if k != "testpaths"}
    assert packaged == expected


def test_the_default_manifests_are_the_shipped_ones() -> None:
    assert locations.manifests_dir() == ROOT / "manifests"
    assert (locations.manifests_dir() / "base").is_dir()
    assert (locations.suites_dir() / "requirements.toml").is_file()


# --------------------------------------------------------------------------------------------------
# The wheel
# --------------------------------------------------------------------------------------------------


def test_the_wheel_holds_the_suites_the_manifests_and_the_data_files(tmp_path: Path) -> None:
    """Built from a clean copy of the sources: every data file the tool reads is in the wheel, no self-test is."""
    pytest.importorskip("setuptools", minversion="68")  # requirements-dev.lock pins it
    from fixtures.runner_image import PACKAGES, build_wheel

    wheel = build_wheel(ROOT, tmp_path)  # the one the in-cluster runner image installs
    source = tmp_path / "src"
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {
        path.relative_to(source).as_posix()
        for package in PACKAGES
        for path in (source / package).rglob("*")
        if path.is_file() and "build" not in path.relative_to(source).parts
    }
    assert {"suites/requirements.toml", "suites/known_defects.toml", "manifests/README.md"} <= expected
    assert sorted(expected - names) == []
    assert not [name for name in names if name.startswith("tests/") or "__pycache__" in name]
    entry_points = zipfile.ZipFile(wheel).read(
        next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    )
    assert f"[pytest11]\n{PLUGIN} = {PLUGIN}".encode() in entry_points
