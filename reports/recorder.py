"""Turns the phase reports of a pytest session into a :class:`~reports.model.RunRecord`.

Kept free of pytest hooks so it can be driven by plain data (and, later, by reports relayed from
pytest-xdist workers): the plugin converts each ``TestReport`` into a :class:`PhaseReport`.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import secrets
import subprocess
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports import history
from reports.evidence import Evidence
from reports.masking import Masker
from reports.model import (
    ENVIRONMENT_LIMITATION,
    FAILING,
    Attempt,
    CollectionError,
    RunRecord,
    Status,
    TestResult,
)

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ReportConfigError(ValueError):
    """The report cannot be set up as asked (bad run id, run id changed after use...)."""


def generate_run_id(now: datetime | None = None) -> str:
    """``YYYYMMDD-HHMMSS-<4 hex>`` in UTC, e.g. ``20250114-031502-9f3a``."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID_RE.match(run_id):
        raise ReportConfigError(
            f"run id {run_id!r} is not usable as a directory name: expected 1-100 characters of "
            "letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 20250114-031502-9f3a)"
        )
    return run_id


@dataclass(frozen=True)
class TestMeta:
    """What the markers say about a test."""

    requirement_id: str | None = None
    requirement: str | None = None
    area: str | None = None

    __test__ = False


@dataclass(frozen=True)
class PhaseReport:
    """The parts of a pytest ``TestReport`` the record needs."""

    nodeid: str
    when: str  # setup | call | teardown
    outcome: str  # passed | failed | skipped | rerun
    duration: float
    start: float | None = None
    message: str | None = None
    longrepr: str | None = None
    skip_reason: str | None = None
    wasxfail: bool = False
    attempt: int | None = None  # pytest-rerunfailures' report.rerun, 0 for the first run


@dataclass
class _AttemptState:
    phases: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0
    start: float | None = None
    message: str | None = None
    longrepr: str | None = None
    skip_reason: str | None = None

    def status(self) -> Status:
        phases = self.phases
        if phases.get("setup") == "failed":
            return Status.ERROR
        if phases.get("call") == "failed":
            return Status.FAILED
        if phases.get("teardown") == "failed":
            return Status.ERROR
        for when in ("setup", "call"):
            outcome = phases.get(when)
            if outcome in (Status.INCOMPLETE, Status.SKIPPED, Status.XFAILED):
                return Status(outcome)
        if phases.get("call") == "xpassed":
            return Status.XPASSED
        if phases.get("call") == "passed":
            return Status.PASSED
        return Status.UNRUN


class RunRecorder:
    """Session-level report state, reachable as ``config.stash[reports.RECORDER_KEY]``.

    The framework fills the environment inventory through :meth:`set_inventory` (or
    :meth:`update_inventory`) and may register secret values with :meth:`add_secret`.
    """

    def __init__(
        self,
        *,
        base_dir: Path,
        enabled: bool = True,
        run_id: str | None = None,
        command: list[str] | None = None,
        rootdir: Path | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.base_dir_source = "default"
        self.enabled = enabled
        self.masker = Masker()
        self.rootdir = rootdir
        self.command = list(command or [])
        self._run_id = validate_run_id(run_id) if run_id else None
        self._run_id_frozen = False
        self._base_dir_frozen = False
        self._inventory: dict[str, Any] = {}
        self._tests: dict[str, TestResult] = {}
        self._attempts: dict[str, list[_AttemptState]] = {}
        self._evidence: dict[str, Evidence] = {}
        self._collection_errors: list[CollectionError] = []
        self._started_wall = datetime.now(UTC)
        self._started = time.monotonic()
        self.record: RunRecord | None = None
        self.written: dict[str, Path] = {}
        self.write_error: str | None = None

    # -- run identity -------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run id; generated on first use if nobody set one, and fixed from then on."""
        if self._run_id is None:
            self._run_id = generate_run_id(self._started_wall)
        self._run_id_frozen = True
        return self._run_id

    def set_run_id(self, run_id: str) -> None:
        """Use the framework's run id (the one its namespaces are labelled with) for the report."""
        validate_run_id(run_id)
        if self._run_id_frozen and run_id != self._run_id:
            raise ReportConfigError(
                f"cannot change the report run id to {run_id!r}: {self._run_id!r} is already in use "
                "(set it in pytest_configure or pytest_sessionstart, before any test runs)"
            )
        self._run_id = run_id

    def set_base_dir(self, base_dir: Path, *, source: str = "the framework") -> None:
        """Use the framework's report base directory (e.g. from its profile file)."""
        if self._base_dir_frozen and base_dir.resolve() != self.base_dir:
            raise ReportConfigError(
                f"cannot move the report base directory to {str(base_dir)!r}: {str(self.base_dir)!r} is "
                "already in use (set it in pytest_configure or pytest_sessionstart, before any test runs)"
            )
        if base_dir.resolve() != self.base_dir:
            self.base_dir_source = source
        self.base_dir = base_dir.resolve()

    @property
    def run_dir(self) -> Path | None:
        """``<base dir>/<run id>``, or ``None`` with ``--no-report``."""
        self._base_dir_frozen = True
        return self.base_dir / self.run_id if self.enabled else None

    # -- inventory and secrets ------------------------------------------------------------------------

    def set_inventory(self, inventory: Mapping[str, Any]) -> None:
        """Replace the environment inventory.

        Known sections: ``kubernetes`` (``{"version", "nodes"}``), ``images`` (list of ``{"name",
        "image", "digest"}``), ``parameters``, ``suite`` (``{"version", "commit"}``), ``profile``; any other
        key is shown as is. Values must be JSON-serializable; secret-looking keys are masked.
        """
        self._inventory = _json_copy(dict(inventory), "inventory")

    def update_inventory(self, **sections: Any) -> None:
        """Set some inventory sections, keeping the others."""
        self._inventory.update(_json_copy(sections, "inventory"))

    @property
    def inventory(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._inventory))  # type: ignore[no-any-return]

    def add_secret(self, value: str) -> None:
        """Mask every occurrence of this literal value (e.g. a generated password) in the record."""
        self.masker.add_secret(value)

    # -- tests ----------------------------------------------------------------------------------------

    def evidence_for(self, nodeid: str) -> Evidence:
        if nodeid not in self._evidence:
            self._evidence[nodeid] = Evidence(nodeid, run_dir=self.run_dir)
        return self._evidence[nodeid]

    def register(self, nodeid: str, meta: TestMeta, *, status: Status = Status.UNRUN) -> None:
        """Announce a collected (or deselected) test so that one that never runs still shows up."""
        test = self._tests.setdefault(nodeid, TestResult(nodeid=nodeid))
        test.requirement_id = meta.requirement_id
        test.requirement = meta.requirement
        test.area = meta.area
        if not self._attempts.get(nodeid):
            test.status = status

    def collection_error(self, nodeid: str, message: str) -> None:
        self._collection_errors.append(CollectionError(nodeid=nodeid, message=message))

    def collection_skipped(self, nodeid: str, reason: str) -> None:
        """A whole module skipped at import (``allow_module_level``): its checks must not vanish."""
        test = self._tests.setdefault(nodeid, TestResult(nodeid=nodeid))
        test.status = Status.INCOMPLETE if reason.startswith(ENVIRONMENT_LIMITATION) else Status.SKIPPED
        test.skip_reason = reason

    def record_phase(self, report: PhaseReport, meta: TestMeta | None = None) -> None:
        test = self._tests.setdefault(report.nodeid, TestResult(nodeid=report.nodeid))
        if meta is not None and test.requirement_id is None and test.area is None:
            test.requirement_id, test.requirement, test.area = meta.requirement_id, meta.requirement, meta.area
        attempts = self._attempts.setdefault(report.nodeid, [])
        new_attempt = not attempts or (report.when == "setup" and "setup" in attempts[-1].phases)
        if report.attempt is not None and attempts and report.attempt >= len(attempts):
            new_attempt = True
        if new_attempt:
            attempts.append(_AttemptState(start=report.start))
        state = attempts[-1]
        state.duration += report.duration
        phase_outcome = _phase_outcome(report)
        state.phases[report.when] = phase_outcome
        if phase_outcome == "failed" and state.message is None:
            state.message = report.message
            state.longrepr = report.longrepr
        if report.skip_reason and state.skip_reason is None:
            state.skip_reason = report.skip_reason
        if phase_outcome == "xpassed" and report.message and state.message is None:
            state.message = report.message

    # -- end of session -------------------------------------------------------------------------------

    def finish(self, *, exit_status: int, interrupted: bool) -> RunRecord:
        """Freeze the record: attempts folded into statuses, evidence attached, secrets masked."""
        for nodeid, attempts in self._attempts.items():
            _fold_attempts(self._tests[nodeid], attempts)
        for nodeid, evidence in self._evidence.items():
            test = self._tests.setdefault(nodeid, TestResult(nodeid=nodeid))
            test.evidence = dict(evidence.values)
            test.timelines = dict(evidence.timelines)
            test.attachments = list(evidence.attachments)
        inventory = self.inventory
        if "suite" not in inventory:
            inventory["suite"] = detect_suite_info(self.rootdir)
        finished = datetime.now(UTC)
        record = RunRecord(
            run_id=self.run_id,
            started_at=self._started_wall.isoformat(timespec="seconds"),
            finished_at=finished.isoformat(timespec="seconds"),
            duration=round(time.monotonic() - self._started, 3),
            tests=list(self._tests.values()),
            inventory=inventory,
            collection_errors=list(self._collection_errors),
            interrupted=interrupted,
            exit_status=exit_status,
            command=self.command,
        )
        self.record = mask_record(record, self.masker)
        return self.record

    def write(self) -> dict[str, Path]:
        """Append to the history, then write run.json and every format into the run directory."""
        from reports.writer import write_run  # the renderers are only needed at the very end

        if self.record is None:
            raise ReportConfigError("finish() must be called before write()")
        run_dir = self.run_dir
        if run_dir is None:
            return {}
        self.record.history = history.update(self.base_dir, self.record)
        self.written = write_run(self.record, run_dir)
        return self.written


def _phase_outcome(report: PhaseReport) -> str:
    if report.outcome in ("failed", "rerun"):
        return "failed"
    if report.outcome == "skipped":
        if report.wasxfail:
            return Status.XFAILED.value
        if report.skip_reason and report.skip_reason.startswith(ENVIRONMENT_LIMITATION):
            return Status.INCOMPLETE.value
        return Status.SKIPPED.value
    if report.wasxfail and report.when == "call":
        return "xpassed"
    return "passed"


def _fold_attempts(test: TestResult, attempts: list[_AttemptState]) -> None:
    if not attempts:
        return
    test.attempts = [
        Attempt(status=a.status(), phases=dict(a.phases), duration=round(a.duration, 3), message=a.message)
        for a in attempts
    ]
    last = attempts[-1]
    status = last.status()
    test.phases = dict(last.phases)
    test.duration = round(last.duration, 3)
    start = attempts[0].start
    test.started_at = None if start is None else datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds")
    test.skip_reason = last.skip_reason
    test.message, test.longrepr = last.message, last.longrepr
    earlier_failures = [a for a in attempts[:-1] if a.status() in FAILING]
    if status is Status.PASSED and earlier_failures:
        status = Status.FLAKY
        first = earlier_failures[0]
        test.message = (
            f"flaky: failed {len(earlier_failures)} of {len(attempts)} attempts, passed on attempt "
            f"{len(attempts)}; first failure: {first.message or 'no message'}"
        )
        test.longrepr = first.longrepr
    test.status = status


def mask_record(record: RunRecord, masker: Masker) -> RunRecord:
    """Mask secrets everywhere in the record (in place) and return it."""
    record.inventory = masker.value(record.inventory)
    record.command = masker.argv(record.command)
    for test in record.tests:
        test.evidence = masker.value(test.evidence)
        test.timelines = masker.value(test.timelines)
        for field_name in ("message", "longrepr", "skip_reason", "requirement"):
            value = getattr(test, field_name)
            if value is not None:
                setattr(test, field_name, masker.text(value))
        for attempt in test.attempts:
            if attempt.message is not None:
                attempt.message = masker.text(attempt.message)
        for attachment in test.attachments:
            attachment.label = masker.text(attachment.label)
    for error in record.collection_errors:
        error.message = masker.text(error.message)
    for signoff in record.signoffs:
        signoff.comment = masker.text(signoff.comment)
    return record


def detect_suite_info(rootdir: Path | None) -> dict[str, Any]:
    """The suite's version and git commit, when the framework did not report them."""
    info: dict[str, Any] = {"version": None, "commit": None, "dirty": None, "source": "detected by reports"}
    try:
        info["version"] = importlib.metadata.version("geocube-acceptance")
    except importlib.metadata.PackageNotFoundError:
        if rootdir is not None and (rootdir / "pyproject.toml").is_file():
            try:
                project = tomllib.loads((rootdir / "pyproject.toml").read_text(encoding="utf-8"))
                info["version"] = project.get("project", {}).get("version")
            except (OSError, tomllib.TOMLDecodeError):
                pass
    if rootdir is not None:
        info["commit"] = _git(rootdir, "rev-parse", "HEAD")
        status = _git(rootdir, "status", "--porcelain", "--untracked-files=no")
        info["dirty"] = None if status is None else bool(status)
    return info


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _json_copy(value: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(value, allow_nan=False))  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ReportConfigError(f"{what} is not JSON-serializable: {exc}") from exc
