"""``geocube-acceptance``: one entry point for the embedded cluster, the suites, the reports and the janitor.

    geocube-acceptance cluster up|down|status|logs ...   the embedded cluster (localcluster.cli)
    geocube-acceptance run [PYTEST ARGS...]              the acceptance suites (suites/ unless paths are given)
    geocube-acceptance report RUN_DIR ...                regenerate a run's reports (reports.cli)
    geocube-acceptance gc [--dry-run] [--run-id ID]      delete this suite's expired namespaces
    geocube-acceptance runner-image                      build the in-cluster runner's image (OCI archive)
    geocube-acceptance --version                         the installed version

Exit status of run (and of plain pytest on the suites) and of report: the run's verdict.

    0  SIGN-OFF PASS   every requirement that applies to the profile ran and passed
    0  PARTIAL         every selected check passed, but the selection left requirements out (no sign-off)
    1  FAIL            a check failed, errored or passed only on rerun
    2  INCOMPLETE      a selected check could not run here, or the run was interrupted
    3  ERROR           the run could not perform its checks (build, cluster, render or deploy failed)
    4  usage error     bad options or input: nothing was run or judged

Subcommands are imported lazily: ``gc`` must not pay for the report renderer, and ``run`` must not
need the embedded cluster's build machinery unless the suites ask for it.

The suites and the reference manifests ship in the wheel (``geocube_acceptance.locations``): ``run``
works from any directory. Outside a checkout it gives pytest the packaged configuration
(``acceptance.ini``, the checkout's ``[tool.pytest.ini_options]``) and roots the run where the suites are
installed, so that node ids read ``suites/<area>/...`` as in a checkout; the reports (``reports/runs/``) and
pytest's cache land in the current directory, never in site-packages.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from geocube_acceptance import locations

if TYPE_CHECKING:
    import pytest

    from fixtures.cluster_client import KubeClient

DISTRIBUTION = "geocube-acceptance"
REPO = Path(__file__).resolve().parent.parent
SUITES = locations.suites_dir()
PLUGIN = "fixtures.plugin"
USAGE = "\n\n".join(__doc__.split("\n\n")[1:4]) if __doc__ else ""
EXIT_USAGE = 4
"""Bad options or input (pytest's usage-error code): 2 would read as the INCOMPLETE verdict."""

# pytest and geocube options that take a separate value: their value is never a test path.
_VALUE_OPTIONS = frozenset(
    {
        "-k", "-m", "-p", "-o", "-c", "-W", "--rootdir", "--confcutdir", "--basetemp", "--junitxml", "--junit-xml",
        "--junit-prefix", "--ignore", "--ignore-glob", "--deselect", "--tb", "--maxfail", "--durations",
        "--durations-min", "--timeout", "--log-level", "--log-file", "--override-ini", "--capture", "--import-mode",
        "--config-file",
        "--geocube-report-dir", "--geocube-run-id", "--geocube-profile", "--reruns", "--reruns-delay",
        "--only-rerun", "--kubeconfig", "--context", "--set", "--params-file", "--manifests-dir", "--messaging",
        "--storage", "--access-mode", "--keep-namespace", "--existing-namespace",
    }
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(f"usage:\n{USAGE}")
        return 0 if args else EXIT_USAGE
    if args[0] in ("-V", "--version"):
        print(f"{DISTRIBUTION} {version()}")
        return 0
    handlers: dict[str, Callable[[list[str]], int]] = {
        "cluster": lambda rest: _delegate("localcluster.cli", "cluster", rest),
        "report": lambda rest: _delegate("reports.cli", "report", rest),
        "run": run,
        "gc": gc,
        "runner-image": runner_image,
    }
    handler = handlers.get(args[0])
    if handler is None:
        print(f"geocube-acceptance: unknown command {args[0]!r}\nusage:\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    return handler(args[1:])


def _delegate(module: str, command: str, rest: list[str]) -> int:
    """Run ``module.main(rest)``; a missing module is a clear error, not a traceback."""
    try:
        entry = importlib.import_module(module).main
    except (ImportError, AttributeError) as err:
        print(f"geocube-acceptance {command}: unavailable ({module}.main cannot be loaded: {err})", file=sys.stderr)
        return EXIT_USAGE
    return int(entry(rest) or 0)


def version() -> str:
    """The installed distribution's version (package metadata)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: run `pip install -e .`)"


def run(rest: list[str]) -> int:
    """Run pytest on the suites (or on the paths given) with the given arguments."""
    import pytest

    args = rest if any(_is_test_path(rest, i) for i in range(len(rest))) else [str(SUITES), *rest]
    # -p: the suite's plugin for any paths (also a user's own checks); registered by its module name, it is
    # never loaded twice with the checkout's conftest or the pytest11 entry point.
    return int(pytest.main(["-p", PLUGIN, *_packaged_config(args), *args], plugins=[_RunProgram()]))


class _RunProgram:
    """Names this command, not ``pytest.main()``, in pytest's usage line, ``--help`` and errors."""

    def pytest_addoption(self, parser: pytest.Parser) -> None:
        parser.prog = "geocube-acceptance run"


def _packaged_config(args: Sequence[str]) -> list[str]:
    """Outside a checkout: the packaged pytest configuration, and a rootdir chosen rather than guessed.

    The wheel has no pyproject.toml, and pytest would otherwise take the rootdir from the installed suites'
    folder and any configuration file above it. A run of the suites is rooted at the installed folder (stable
    node ids), a run of other paths at the current directory.
    """
    if locations.checkout() is not None:
        return []
    given = {arg.split("=", 1)[0] for arg in args}
    packaged = [] if given & {"-c", "--config-file"} else ["-c", str(locations.ACCEPTANCE_INI)]
    if "--rootdir" in given:
        return packaged
    paths = [Path(args[i].split("::")[0]).resolve() for i in range(len(args)) if _is_test_path(args, i)]
    if all(path == SUITES or SUITES in path.parents for path in paths):
        # Rooted where the suites are installed: node ids read suites/<area>/... as in a checkout. Nothing is
        # written there: reports go to the current directory (locations.output_base), and so does pytest's cache.
        cache = [] if "no:cacheprovider" in args else ["-o", f"cache_dir={Path.cwd() / '.pytest_cache'}"]
        return [*packaged, "--rootdir", str(locations.ROOT), *cache]
    return [*packaged, "--rootdir", str(Path.cwd())]


def _is_test_path(args: Sequence[str], index: int) -> bool:
    """Whether ``args[index]`` is a positional test path (not an option nor an option's value)."""
    arg = args[index]
    if arg.startswith("-"):
        return False
    previous = args[index - 1] if index else ""
    if previous in _VALUE_OPTIONS or (previous.startswith("--geocube-") and "=" not in previous):
        return False
    return Path(arg.split("::")[0]).exists()


def gc(rest: list[str]) -> int:
    """Delete this suite's namespaces whose run is over; undo dead runs' changes to live stacks."""
    parser = argparse.ArgumentParser(prog="geocube-acceptance gc", description=gc.__doc__)
    parser.add_argument(
        "--kubeconfig", dest="geocube_kubeconfig", metavar="FILE", help="cluster to clean (default: embedded)"
    )
    parser.add_argument("--context", dest="geocube_context", metavar="NAME", help="kubeconfig context")
    parser.add_argument(
        "--geocube-profile",
        "--profile",
        dest="geocube_profile",
        metavar="FILE",
        help="TOML profile (for kubeconfig/context)",
    )
    parser.add_argument("--run-id", dest="run_id_filter", metavar="ID", help="only namespaces of this run")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    options = parser.parse_args(rest)
    from fixtures.config import resolve
    from fixtures.errors import HarnessError

    try:
        settings = resolve(vars(options), os.environ, base_dir=REPO)
        for notice in settings.notices:
            print(f"gc: warning: {notice}", file=sys.stderr)
        kube = _connect(settings.kubeconfig, settings.context)
        if kube is None:
            print("gc: no --kubeconfig and the embedded cluster is not running: nothing to collect")
            return 0
        from fixtures.janitor import collect_garbage

        collected = collect_garbage(
            kube,
            now=datetime.now(UTC),
            run_id=options.run_id_filter,
            dry_run=options.dry_run,
            local_storage=settings.kubeconfig is None,
        )
    except HarnessError as err:
        print(f"gc: {err}", file=sys.stderr)
        return EXIT_USAGE
    verb = "would delete" if options.dry_run else "deleted"
    for decision in collected.decisions:
        print(f"{verb if decision.delete else 'kept':<12} {decision.name}  ({decision.reason})")
    if not collected.decisions:
        print("gc: no namespace of this suite on the cluster")
    for line in collected.undone:
        print(f"gc: {line}")
    for error in collected.errors:
        print(f"gc: failed: {error}", file=sys.stderr)
    return 1 if collected.errors else 0


def runner_image(rest: list[str]) -> int:
    """Build the image that runs the suites inside a cluster (--access-mode in-cluster) and say how to use it."""
    parser = argparse.ArgumentParser(prog="geocube-acceptance runner-image", description=runner_image.__doc__)
    parser.parse_args(rest)
    from fixtures.runner_image import build_runner_image
    from geocube_acceptance.errors import AcceptanceError

    try:
        image = build_runner_image()
    except AcceptanceError as err:
        print(f"runner-image: {err}", file=sys.stderr)
        return 1
    tag = image.ref.rsplit(":", 1)[1]
    print(f"image:       {image.ref} ({image.size / 1e6:.0f} MB, manifest {image.manifest_digest})")
    print(f"OCI archive: {image.archive}")
    print(f"push it:     skopeo copy oci-archive:{image.archive} docker://REGISTRY/geocube-acceptance-runner:{tag}")
    print(
        "then:        geocube-acceptance run --kubeconfig FILE --access-mode in-cluster "
        f"--geocube-runner-image REGISTRY/geocube-acceptance-runner:{tag}"
    )
    return 0


def _connect(kubeconfig: Path | None, context: str | None) -> KubeClient | None:
    """A client for the given cluster, or for the embedded one if it is running (never starts it)."""
    from fixtures.cluster_client import connect

    if kubeconfig is None:
        try:
            from localcluster.cluster import EmbeddedCluster
        except ImportError:
            return None
        cluster = EmbeddedCluster()
        if not cluster.is_healthy():
            return None
        kubeconfig = cluster.kubeconfig
    return connect(kubeconfig, context)


if __name__ == "__main__":
    sys.exit(main())
