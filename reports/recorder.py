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

from reports import defects, history
from reports.defects import DefectEntry, DefectWitness
from reports.errors import ReportError
from reports.evidence import Evidence
from reports.masking import Masker
from reports.model import (
    ENVIRONMENT_LIMITATION,
    FAILING,
    Attempt,
    CollectionError,
    KnownDefect,
    Requirement,
    RunPhase,
    RunRecord,
    SessionError,
    Status,
    TestResult,
)

# One rule for every run id: it names the report folder, and the framework puts it in namespace names and labels
# (geocube-e2e-<run id>-xxxxx must stay a DNS-1123 label of at most 63 characters).
RUN_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
RUN_ID_RULE = "1-40 lowercase letters, digits or '-', starting and ending with a letter or digit (DNS-safe)"


class ReportConfigError(ReportError, ValueError):
    """The report cannot be set up as asked (bad run id, run id changed after use...)."""


def generate_run_id(now: datetime | None = None) -> str:
    """``YYYYMMDD-HHMMSS-<4 hex>`` in UTC, e.g. ``20250114-031502-9f3a``."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def validate_run_id(run_id: str) -> str:
    """``run_id`` if it follows the one rule for run ids (ReportConfigError says which rule otherwise)."""
    if not RUN_ID_PATTERN.match(run_id):
        raise ReportConfigError(
            f"run id {run_id!r} is not usable: it names the report folder and the stack's namespace; expected "
            f"{RUN_ID_RULE}, e.g. 20250114-031502-9f3a"
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
    """One execution of a test as its phase reports arrive: when it started, how long it took, what it showed."""

    start: float | None = None
    duration: float = 0.0
    phases: dict[str, str] = field(default_factory=dict)
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
        self._catalogue: list[Requirement] | None = None
        self._session_errors: list[SessionError] = []
        self._phases: list[RunPhase] = []
        self._defect_register: list[DefectEntry] = []
        self._defect_scope: tuple[str | None, dict[str, str]] = (None, {})
        self._witnesses: dict[str, DefectWitness] = {}
        self._acceptance_signs = False
        self.acceptance_root: Path | None = None
        """The suites' folder (set by the framework): a collection error or skip under it is an acceptance run."""
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
        """``<base dir>/<run id>``, or ``None`` with ``--geocube-no-report``."""
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

    def add_secret(self, value: str) -> bool:
        """Mask every occurrence of this literal value (e.g. a generated password) in the record.

        False when it is too short to be masked as a literal (see :meth:`reports.masking.Masker.add_secret`).
        """
        return self.masker.add_secret(value)

    # -- what the run must cover, and what it did outside its checks -------------------------------

    def set_catalogue(self, requirements: list[Requirement]) -> None:
        """The requirements of the suite as they apply to this run's profile (see :mod:`reports.catalogue`)."""
        self._catalogue = list(requirements)

    @property
    def catalogue(self) -> list[Requirement] | None:
        return None if self._catalogue is None else list(self._catalogue)

    def coverage_header(self) -> str:
        """One header line: what a sign-off needs from this run, said before it starts."""
        if self._catalogue is None:
            return "geocube-coverage: no requirement catalogue: this run cannot sign off"
        applicable = [r for r in self._catalogue if r.applicable]
        line = (
            f"geocube-coverage: SIGN-OFF PASS needs all {len(applicable)} applicable requirements of the catalogue "
            f"({len(self._catalogue)} in all) to run and pass"
        )
        if self._defect_register:
            line += f"; known-defect register entries: {len(self._defect_register)}"
        return line

    def set_defect_register(self, entries: list[DefectEntry], *, version: str | None, profile: dict[str, str]) -> None:
        """The known defects of the system under test, and the version and profile that decide which are expected."""
        self._defect_register = list(entries)
        self._defect_scope = (version, dict(profile))

    def defect_witness(self, nodeid: str, requirement_id: str | None) -> DefectWitness:
        """What the check ``nodeid`` may recognise: the register's entries for its requirement."""
        if nodeid not in self._witnesses:
            entries = [e for e in self._defect_register if requirement_id and e.requirement == requirement_id]
            self._witnesses[nodeid] = DefectWitness(nodeid, entries)
        return self._witnesses[nodeid]

    def session_error(self, phase: str, message: str) -> None:
        """The run could not perform its checks (build, cluster, render, deploy): the verdict is ERROR."""
        if any(e.phase == phase and e.message == message for e in self._session_errors):
            return  # a session fixture's error is re-raised for every check that needs it
        self._session_errors.append(SessionError(phase=phase, message=message))

    @property
    def session_errors(self) -> list[SessionError]:
        return list(self._session_errors)

    def add_phase(self, phase: RunPhase) -> None:
        """Work done outside any check (build, deploy); ``phase.during`` names the check it is taken out of."""
        self._phases.append(phase)

    @property
    def is_acceptance_run(self) -> bool:
        """Whether this session ran (or selected) acceptance checks: only those write sign-off reports and history.

        A self-test session (``pytest tests/unit``) loads the plugin through the root conftest but collects no
        check with a requirement marker, and must leave the sign-off history alone.
        """
        return (
            bool(self._session_errors) or self._acceptance_signs or any(t.requirement_id for t in self._tests.values())
        )

    def mark_acceptance(self) -> None:
        """Something only an acceptance run has happened (a suite module failed to import, a malformed marker)."""
        self._acceptance_signs = True

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

    def left_out(self, nodeid: str, reason: str) -> None:
        """A deselected check was left out by a policy, not by -k/-m (e.g. its impact on a live stack)."""
        test = self._tests.setdefault(nodeid, TestResult(nodeid=nodeid, status=Status.DESELECTED))
        test.skip_reason = reason

    def collection_error(self, nodeid: str, message: str) -> None:
        self._collection_errors.append(CollectionError(nodeid=nodeid, message=message))

    def requirement_marker_error(self, nodeid: str, message: str) -> None:
        """A check carries a malformed requirement marker: a collection error of an acceptance run (verdict FAIL)."""
        self.mark_acceptance()
        self.collection_error(nodeid, message)

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

    def finish(self, *, interrupted: bool) -> RunRecord:
        """Freeze the record: attempts folded into statuses, evidence attached, secrets masked."""
        for nodeid, attempts in self._attempts.items():
            _fold_attempts(self._tests[nodeid], attempts)
        self._take_phases_out_of_checks()
        titles = {r.id: r.title for r in self._catalogue or []}
        for test in self._tests.values():
            if test.requirement_id in titles:
                test.requirement = titles[test.requirement_id]
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
            command=self.command,
            catalogue=None if self._catalogue is None else list(self._catalogue),
            session_errors=list(self._session_errors),
            phases=list(self._phases),
            known_defects=self._known_defects(),
        )
        # The process exits with the verdict's code (the plugin sets it), whatever pytest's status was.
        record.exit_status = record.verdict.exit_code
        self.record = mask_record(record, self.masker)
        return self.record

    def _take_phases_out_of_checks(self) -> None:
        """A build or deploy triggered by a check's setup is reported as a phase, not as the check's time."""
        for phase in self._phases:
            test = self._tests.get(phase.during or "")
            if test is None:
                continue
            if len(test.attempts) <= 1:
                test.duration = round(max(0.0, test.duration - phase.duration), 3)
            if test.attempts:  # the phase ran in the setup of the first attempt
                first = test.attempts[0]
                first.duration = round(max(0.0, first.duration - phase.duration), 3)

    def _known_defects(self) -> list[KnownDefect]:
        ran = {
            t.requirement_id: t.nodeid
            for t in self._tests.values()
            if t.requirement_id and t.status in (Status.PASSED, Status.FLAKY, Status.FAILED)
        }
        observations = [o for w in self._witnesses.values() for o in w.observations]
        version, profile = self._defect_scope
        return defects.summarise(self._defect_register, observations, version=version, profile=profile, ran=ran)

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
    for session_error in record.session_errors:
        session_error.message = masker.text(session_error.message)
    for phase in record.phases:
        if phase.message is not None:
            phase.message = masker.text(phase.message)
    for defect in record.known_defects:
        if defect.evidence is not None:
            defect.evidence = masker.text(defect.evidence)
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
