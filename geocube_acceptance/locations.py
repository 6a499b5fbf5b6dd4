"""Where the suites, the reference manifests and the packaged pytest configuration are.

The top-level packages sit side by side both in a checkout (the repository root) and in an installed
wheel (site-packages): ``suites/`` and ``manifests/`` are found next to this package, never through
the import system, so an unrelated ``suites`` package on ``sys.path`` cannot stand in for ours.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The folder holding the top-level packages: the checkout's root, or site-packages."""
ACCEPTANCE_INI = Path(__file__).resolve().parent / "acceptance.ini"
"""pytest's configuration for the suites outside a checkout (the same as pyproject's ``[tool.pytest.ini_options]``)."""


def suites_dir() -> Path:
    """The acceptance suites (the ``suites`` package, with its catalogue and defect register)."""
    return ROOT / "suites"


def manifests_dir() -> Path:
    """The reference deployment's templates: the default of ``--manifests-dir``."""
    return ROOT / "manifests"


def checkout() -> Path | None:
    """The repository root when running from a checkout (editable install included), else None."""
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file() and 'name = "geocube-acceptance"' in pyproject.read_text(encoding="utf-8"):
        return ROOT
    return None


def output_base(rootpath: Path, invocation_dir: Path) -> Path:
    """Where a run's outputs (reports, caches) go by default: the rootdir, unless it is the installed package folder.

    Outside a checkout the suites' run is rooted at the installed folder, so that node ids read
    ``suites/<area>/test_x.py::...`` as in a checkout (history and baselines compare across both); nothing is
    ever written there: the outputs go to the directory the run was started from.
    """
    if checkout() is None and rootpath.resolve() == ROOT:
        return invocation_dir
    return rootpath
