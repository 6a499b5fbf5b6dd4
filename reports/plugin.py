"""pytest plugin writing the release sign-off report of a run.

Loaded by the framework's ``fixtures/plugin.py`` (``pytest_plugins``) or on its own with
``-p reports.plugin``. Records every check (requirement, area, outcome per phase, reruns, evidence),
then at session end writes ``<report dir>/<run id>/``: ``run.json`` (the record), ``report.md``,
``report.html``, ``junit.xml`` and the copied ``diagnostics/``, and appends the run to ``history.jsonl``.

PYTEST_DONT_REWRITE: no asserts here; the marker lets the framework import this module before pytest
registers it as a plugin without an "already imported" warning (an error under filterwarnings=error).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

import pytest
from _pytest._code.code import TerminalRepr  # the type pytest expects of a report's longrepr

from geocube_acceptance.locations import output_base
from reports import console
from reports.defects import DefectWitness
from reports.evidence import Evidence
from reports.masking import Masker
from reports.model import ENVIRONMENT_LIMITATION, Status, Verdict
from reports.recorder import PhaseReport, ReportConfigError, RunRecorder, TestMeta, validate_run_id

RECORDER_KEY = pytest.StashKey[RunRecorder]()
"""``config.stash[RECORDER_KEY]``: the session's :class:`~reports.recorder.RunRecorder`."""
RUN_ID_KEY = pytest.StashKey[str]()
"""Set ``config.stash[RUN_ID_KEY]`` before the session starts to impose a run id; holds the id in use after."""
REPORT_DIR_KEY = pytest.StashKey[Path]()
"""Likewise for the report base directory (the framework's single resolver wins over ``--geocube-report-dir``)."""
_CONSOLE_KEY = pytest.StashKey[TextIO]()
_ConsoleOutput = tuple[TextIO, bool, Callable[[], int]]
_PREVIOUS_CONSOLE_KEY = pytest.StashKey[_ConsoleOutput | None]()
_PREVIOUS_MASKER_KEY = pytest.StashKey[Masker | None]()

VERDICT_COLOURS = {
    Verdict.PASS: "green",
    Verdict.PARTIAL: "yellow",
    Verdict.INCOMPLETE: "yellow",
    Verdict.FAIL: "red",
    Verdict.ERROR: "red",
}
BLOCKED = "BLOCKED:"
"""Skip-reason prefix of a check not run because a prerequisite check failed (see the ``prerequisite`` marker)."""
AREAS = ("database", "messaging", "autoscaling", "storage", "platform")
DEFAULT_REPORT_DIR = "reports/runs"
ENV_REPORT_DIR = "GEOCUBE_REPORT_DIR"
INI_REPORT_DIR = "geocube_report_dir"

_MARKERS = {
    "requirement": "requirement(id, description): the stable requirement id a check verifies, and what it means",
    "prerequisite": "prerequisite(id, ...): checks this one builds on; when one of them failed earlier in the run, "
    "this check is skipped as blocked instead of failing again for the same cause",
    **{area: f"{area}: an acceptance check of the {area} area" for area in AREAS},
}


@dataclass(frozen=True)
class ReportSettings:
    """Where the report goes, resolved once: CLI option > environment variable > ini file > default."""

    base_dir: Path
    base_dir_source: str
    enabled: bool
    run_id: str | None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "geocube-report",
        "Geocube sign-off report (exit status follows the verdict: 0 SIGN-OFF PASS or PARTIAL, 1 FAIL, "
        "2 INCOMPLETE, 3 ERROR; 4 usage error)",
    )
    group.addoption(
        "--geocube-report-dir",
        dest="geocube_report_dir",
        default=None,
        metavar="DIR",
        help=f"base directory of run reports, each run in DIR/<run-id>/ (env {ENV_REPORT_DIR}, "
        f"ini {INI_REPORT_DIR}; default {DEFAULT_REPORT_DIR} under the rootdir)",
    )
    group.addoption(
        "--geocube-run-id",
        dest="geocube_run_id",
        default=None,
        metavar="ID",
        help="run id naming the report directory (default: YYYYMMDD-HHMMSS-<4 hex>, UTC)",
    )
    group.addoption(
        "--geocube-no-report",
        dest="geocube_no_report",
        action="store_true",
        default=False,
        help="record the run but write no report files and no history",
    )
    parser.addini(INI_REPORT_DIR, help="base directory of run reports (relative to the ini file)", default="")


def resolve_settings(config: pytest.Config) -> ReportSettings:
    invocation_dir = config.invocation_params.dir
    option = config.getoption("geocube_report_dir")
    env = os.environ.get(ENV_REPORT_DIR)
    ini = str(config.getini(INI_REPORT_DIR) or "")
    if option:
        base, source = invocation_dir / option, "--geocube-report-dir"
    elif env:
        base, source = invocation_dir / env, f"env {ENV_REPORT_DIR}"
    elif ini:
        ini_dir = config.inipath.parent if config.inipath else config.rootpath
        base, source = ini_dir / ini, f"ini {INI_REPORT_DIR}"
    else:
        base, source = output_base(config.rootpath, invocation_dir) / DEFAULT_REPORT_DIR, "default"
    run_id = config.getoption("geocube_run_id")
    if run_id:
        try:
            validate_run_id(run_id)
        except ReportConfigError as exc:
            raise pytest.UsageError(f"--geocube-run-id: {exc}") from exc
    return ReportSettings(
        base_dir=base.resolve(),
        base_dir_source=source,
        enabled=not config.getoption("geocube_no_report"),
        run_id=run_id,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the framework's own pytest_configure may already want the recorder.
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, line in _MARKERS.items():
        if name not in registered:
            config.addinivalue_line("markers", line)
    settings = resolve_settings(config)
    recorder = RunRecorder(
        base_dir=settings.base_dir,
        enabled=settings.enabled,
        run_id=settings.run_id,
        command=[*config.invocation_params.args],
        rootdir=config.rootpath,
    )
    recorder.base_dir_source = settings.base_dir_source
    config.stash[RECORDER_KEY] = recorder
    config.pluginmanager.register(_SessionHooks(config, recorder), "geocube-report-session")
    _attach_console(config)
    config.stash[_PREVIOUS_MASKER_KEY] = console.mask_with(recorder.masker)


def _attach_console(config: pytest.Config) -> None:
    """Give waits a handle on the real terminal: output capture is suspended now, not during tests."""
    # A pytester run inside a pytest run must not write to, nor keep, the outer run's terminal.
    config.stash[_PREVIOUS_CONSOLE_KEY] = console.get_output()
    try:
        fd = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        console.set_output(None)  # stdout is not a file (embedded pytest): waits fall back to stderr
        return
    stream = open(fd, "w", encoding="utf-8", errors="replace", closefd=True)  # noqa: SIM115 - closed in unconfigure
    config.stash[_CONSOLE_KEY] = stream

    def column() -> int:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        writer = getattr(reporter, "_tw", None)
        return int(getattr(writer, "width_of_current_line", 0) or 0)

    console.set_output(stream, column=column)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS_MASKER_KEY in config.stash:
        console.mask_with(config.stash[_PREVIOUS_MASKER_KEY])
        del config.stash[_PREVIOUS_MASKER_KEY]
    if _PREVIOUS_CONSOLE_KEY in config.stash:
        previous = config.stash[_PREVIOUS_CONSOLE_KEY]
        if previous is None:
            console.set_output(None)
        else:
            console.set_output(previous[0], isatty=previous[1], column=previous[2])
        del config.stash[_PREVIOUS_CONSOLE_KEY]
    stream = config.stash.get(_CONSOLE_KEY, None)
    if stream is not None:
        stream.close()
        del config.stash[_CONSOLE_KEY]


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = resolve_settings(config)
    if not settings.enabled:
        return ["geocube-report: disabled (--geocube-no-report)"]
    recorder = config.stash.get(RECORDER_KEY, None)
    imposed = config.stash.get(REPORT_DIR_KEY, None)
    if recorder is not None and imposed is not None:
        with contextlib.suppress(ReportConfigError):  # pytest_sessionstart reports it as a usage error
            recorder.set_base_dir(Path(imposed), source="the framework, config.stash[REPORT_DIR_KEY]")
    if recorder is not None:
        return [f"geocube-report: {recorder.base_dir} (from {recorder.base_dir_source})", recorder.coverage_header()]
    return [f"geocube-report: {settings.base_dir} (from {settings.base_dir_source})"]


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # trylast: the framework's pytest_configure/pytest_sessionstart may impose its run id and report dir
    # first. The framework resolves the same dests (geocube_run_id, geocube_report_dir) plus its profile
    # file, so its values win.
    config = session.config
    recorder = config.stash[RECORDER_KEY]
    try:
        imposed_dir = config.stash.get(REPORT_DIR_KEY, None)
        if imposed_dir is not None:
            recorder.set_base_dir(Path(imposed_dir), source="the framework, config.stash[REPORT_DIR_KEY]")
        imposed_id = config.stash.get(RUN_ID_KEY, None)
        if imposed_id:
            recorder.set_run_id(imposed_id)
    except ReportConfigError as exc:
        raise pytest.UsageError(f"reports plugin: {exc}") from exc
    config.stash[RUN_ID_KEY] = recorder.run_id
    config.stash[REPORT_DIR_KEY] = recorder.base_dir


def test_meta(item: pytest.Item) -> tuple[TestMeta, str | None]:
    """Requirement and area of a test, and an error message if its requirement marker is malformed."""
    error = None
    requirement_id = description = None
    marker = item.get_closest_marker("requirement")
    if marker is not None:
        args = list(marker.args)
        raw_id = args[0] if args else marker.kwargs.get("id")
        raw_description = args[1] if len(args) > 1 else marker.kwargs.get("description")
        if not isinstance(raw_id, str) or not raw_id.strip() or any(c.isspace() for c in raw_id):
            error = (
                f"{item.nodeid}: @pytest.mark.requirement needs a requirement id without spaces as first "
                f'argument, e.g. @pytest.mark.requirement("DB-CONN-LIMIT", "description"); got {raw_id!r}'
            )
        else:
            requirement_id = raw_id
        if raw_description is not None:
            description = str(raw_description)
    if description is None:
        doc = getattr(getattr(item, "obj", None), "__doc__", None)
        if doc and doc.strip():
            description = doc.strip().splitlines()[0]
    area = next((a for a in AREAS if item.get_closest_marker(a) is not None), None)
    if area is None:
        parts = Path(item.nodeid.split("::")[0]).parts
        if len(parts) > 1 and parts[0] == "suites" and parts[1] in AREAS:
            area = parts[1]
    return TestMeta(requirement_id=requirement_id, requirement=description, area=area), error


class _MaskedRepr(TerminalRepr):
    """A failure's representation with its secrets masked, keeping what readers use: text and crash line."""

    def __init__(self, text: str, crash: Any, masker: Masker) -> None:
        self.text = text
        # The crash line (file, line, message) is what the terminal summary and the record show as the message.
        self.reprcrash = dataclasses.replace(crash, message=masker.text(crash.message)) if crash is not None else None

    def toterminal(self, out: Any) -> None:
        for line in self.text.splitlines():
            out.line(line)

    def __str__(self) -> str:
        return self.text


class _SessionHooks:
    """Per-config hooks (registered by pytest_configure) so nested pytester runs never share state."""

    def __init__(self, config: pytest.Config, recorder: RunRecorder) -> None:
        self.config = config
        self.recorder = recorder
        self._requirement_of: dict[str, str] = {}  # nodeid -> requirement id
        self._failed: dict[str, str] = {}  # requirement id -> the failure's message, for checks that ran

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Skip a check whose prerequisite failed earlier in this run (the report shows one root cause)."""
        for marker in item.iter_markers("prerequisite"):
            for prerequisite in marker.args:
                if prerequisite in self._failed:
                    cause = self._failed[prerequisite]
                    verb = "was blocked" if cause.startswith("prerequisite ") else "failed earlier in this run"
                    pytest.skip(f"{BLOCKED} prerequisite {prerequisite} {verb} ({cause[:200]}); fix it first")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Failures and captured output reach the terminal, junit and the record only through the run's masker."""
        report = yield
        masker = self.recorder.masker
        if report.longrepr is not None:
            text = report.longreprtext
            masked = masker.text(text)
            if masked != text:
                report.longrepr = _MaskedRepr(masked, getattr(report.longrepr, "reprcrash", None), masker)
        report.sections = [(title, masker.text(content)) for title, content in report.sections]
        return report

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        """A check's requirement id is one of its keywords: ``-k DB-CONN-LIMIT`` selects it (before -k filters)."""
        requirement_id = test_meta(item)[0].requirement_id
        if requirement_id:
            item.extra_keyword_matches.add(requirement_id)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        root = self.recorder.acceptance_root
        if (report.failed or report.skipped) and root is not None and report.nodeid:
            path = (self.config.rootpath / report.nodeid.split("::")[0]).resolve()
            if path == root or root in path.parents:
                self.recorder.mark_acceptance()  # even if no check of the suites could be collected
        if report.failed:
            self.recorder.collection_error(report.nodeid or "<session>", report.longreprtext)
        elif report.skipped and report.nodeid:
            self.recorder.collection_skipped(report.nodeid, _skip_reason(report) or "skipped at collection")

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            self.recorder.register(item.nodeid, test_meta(item)[0], status=Status.DESELECTED)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            meta, error = test_meta(item)
            if error:
                self.recorder.requirement_marker_error(item.nodeid, error)
            self.recorder.register(item.nodeid, meta)
            if meta.requirement_id:
                self._requirement_of[item.nodeid] = meta.requirement_id

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        message = longrepr = None
        if report.failed or report.outcome == "rerun":  # type: ignore[comparison-overlap]
            longrepr = report.longreprtext
            crash = getattr(report.longrepr, "reprcrash", None)
            message = getattr(crash, "message", None) or (longrepr.strip().splitlines() or [""])[-1]
        requirement_id = self._requirement_of.get(report.nodeid)
        if report.failed and requirement_id:
            self._failed.setdefault(requirement_id, message or "failed")
        wasxfail = hasattr(report, "wasxfail")
        skip_reason = _skip_reason(report) if report.skipped else None
        if requirement_id and skip_reason and skip_reason.startswith(BLOCKED):
            # Blocked in turn: what builds on this check is blocked by the same root cause.
            self._failed.setdefault(requirement_id, skip_reason.removeprefix(BLOCKED).strip())
        if wasxfail:
            skip_reason = f"xfail: {report.wasxfail}" if report.wasxfail else "xfail"
        self.recorder.record_phase(
            PhaseReport(
                nodeid=report.nodeid,
                when=report.when or "call",
                outcome=report.outcome,
                duration=float(report.duration),
                start=getattr(report, "start", None),
                message=message,
                longrepr=longrepr,
                skip_reason=skip_reason,
                wasxfail=wasxfail,
                attempt=getattr(report, "rerun", None),
            )
        )

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """A ``pytest.exit`` from a fixture or hook stops the session: its message is a result, not console noise."""
        stop = excinfo.value
        # No session error yet: the framework's abort() records its own, with its phase, before it exits.
        recorded = bool(self.recorder.session_errors)
        if isinstance(stop, pytest.exit.Exception) and stop.returncode != pytest.ExitCode.INTERRUPTED and not recorded:
            self.recorder.session_error("session", str(stop.msg))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR) or bool(
            session.shouldstop or session.shouldfail
        )
        if not self.recorder.is_acceptance_run or self.config.option.collectonly:
            # A self-test session or a --collect-only listing: no verdict, no sign-off artefacts, no history,
            # pytest's own exit status.
            return
        record = self.recorder.finish(interrupted=interrupted)
        # Exit codes follow the verdict (EXIT_CODES), the same for `run`, plain pytest and `report`.
        session.exitstatus = record.verdict.exit_code
        try:
            self.recorder.write()
        except OSError as exc:
            self.recorder.write_error = f"{type(exc).__name__}: {exc}"
            # A run whose sign-off report could not be written must not look green in CI.
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        recorder = self.recorder
        record = recorder.record
        if record is None:
            return
        verdict = record.verdict
        colour = VERDICT_COLOURS[verdict]
        terminalreporter.section("geocube sign-off report", sep="-", bold=True)
        terminalreporter.write_line(
            f"verdict: {verdict.label} (exit status {verdict.exit_code})", bold=True, **{colour: True}
        )
        for reason in record.verdict_reasons:
            terminalreporter.write_line(f"  - {reason}")
        for error in record.session_errors:
            terminalreporter.write_line(f"{error.phase} failed:", red=True, bold=True)
            for line in error.message.strip().splitlines():
                terminalreporter.write_line(f"    {line}")
        for phase in record.phases:
            terminalreporter.write_line(f"phase {phase.name}: {phase.status} in {phase.duration:.0f}s")
        for defect in record.known_defects:
            seen = "observed" if defect.observed else "NOT observed (expected here: fixed? review the register)"
            terminalreporter.write_line(f"known defect {defect.id}: {seen}", yellow=True)
        if recorder.write_error:
            terminalreporter.write_line(
                f"report NOT written to {recorder.run_dir}: {recorder.write_error}", red=True, bold=True
            )
        elif recorder.written:
            terminalreporter.write_line(f"report: {recorder.written['html']}")
            terminalreporter.write_line(f"record: {recorder.written['json']}")
        else:
            terminalreporter.write_line("report files not written (--geocube-no-report)")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    elif longrepr is None:
        return None
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


# -- public helpers ------------------------------------------------------------------------------------


def run_masker(config: pytest.Config) -> Masker:
    """The run's one masker: every secret the run learns is registered here before any output."""
    return get_recorder(config).masker


def get_recorder(config: pytest.Config) -> RunRecorder:
    """The session's recorder, for the framework to set the inventory, the run id or secrets."""
    try:
        return config.stash[RECORDER_KEY]
    except KeyError:
        raise RuntimeError(
            "the reports plugin is not active: add 'reports.plugin' to pytest_plugins or run with -p reports.plugin"
        ) from None


def get_evidence(item: pytest.Item) -> Evidence:
    """The evidence of ``item``, for framework fixtures that attach diagnostics on failure."""
    return get_recorder(item.config).evidence_for(item.nodeid)


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Record values, scaling timelines and diagnostics files for this check's row in the sign-off report."""
    return get_evidence(request.node)


@pytest.fixture
def known_defects(request: pytest.FixtureRequest) -> DefectWitness:
    """Recognise a known defect of the system under test in what this check observed (``recognise(text)``)."""
    meta, _ = test_meta(request.node)
    return get_recorder(request.config).defect_witness(request.node.nodeid, meta.requirement_id)


def abort(
    config: pytest.Config, phase: str, message: str, *, returncode: int = pytest.ExitCode.USAGE_ERROR
) -> NoReturn:
    """Stop the session because it cannot perform its checks; the message is in every report format."""
    __tracebackhide__ = True
    get_recorder(config).session_error(phase, message)
    pytest.exit(message, returncode=returncode)


def incapable(reason: str) -> NoReturn:
    """End the check as INCOMPLETE: this environment cannot perform it (never counted as PASS)."""
    __tracebackhide__ = True
    pytest.skip(f"{ENVIRONMENT_LIMITATION} {reason}")
