"""The ``pytest11`` entry point: loads the suite's plugin (``fixtures.plugin``) for acceptance runs only.

An installed geocube-acceptance takes part in every pytest run of its environment, an unrelated project's
included. Its plugin adds options (``--kubeconfig``, ``--context``, ``--set`` ...), resolves the
``GEOCUBE_*`` settings, prints header lines and masks failure output: none of that belongs in someone
else's run. So this module does nothing unless the run targets the suites — a path inside the installed
(or checked-out) ``suites`` folder, or ``--pyargs suites...`` — and then loads the plugin before the
command line is parsed, as a ``-p`` option would.

``geocube-acceptance run`` passes ``-p fixtures.plugin`` and the checkout's root ``conftest.py`` lists it in
``pytest_plugins``: like this module, both register it under its module name, and pytest registers a
name once, so the plugin is never loaded twice whichever of the three comes first.

PYTEST_DONT_REWRITE: a run that names this module with ``-p`` marks it for assertion rewriting, and the
entry point has usually imported it already ("Module already imported" is an error under filterwarnings=error).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from geocube_acceptance.locations import suites_dir

PLUGIN = "fixtures.plugin"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Load the suite's plugin when this run targets the suites; its options are parsed with the others."""
    if targets_suites(early_config):
        early_config.pluginmanager.import_plugin(PLUGIN)


def targets_suites(config: pytest.Config) -> bool:
    """Whether a test path (or ``--pyargs`` name) of this run is the suites folder or inside it."""
    known = config.known_args_namespace
    args = [str(arg) for arg in (getattr(known, "file_or_dir", None) or [])]
    if getattr(known, "pyargs", False) and any(arg == "suites" or arg.startswith("suites.") for arg in args):
        return True
    if args:
        return _inside_suites(config.invocation_params.dir / arg.split("::")[0] for arg in args)
    testpaths = [str(path) for path in config.getini("testpaths") or []]
    if testpaths:
        return _inside_suites(config.rootpath / path for path in testpaths)
    return _inside_suites([config.invocation_params.dir])


def _inside_suites(paths: Iterable[Path]) -> bool:
    root = suites_dir()
    for path in paths:
        resolved = path.resolve()
        if resolved == root or root in resolved.parents:
            return True
    return False
