"""The run record: what one acceptance run did, as stored in ``run.json``.

Every format (Markdown, HTML, JUnit) is rendered from this record alone, so ``geocube-acceptance report``
can regenerate them later. The verdict is derived here and nowhere else.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from reports.errors import ReportError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
"""Schema 1 records (no catalogue, phases, session errors nor known defects) still load: their coverage is unknown."""
RUN_JSON = "run.json"

ENVIRONMENT_LIMITATION = "ENVIRONMENT-LIMITATION:"
"""Skip-reason prefix meaning "this environment cannot perform the check": counted INCOMPLETE, never PASS."""


class RecordError(ReportError):
    """A run record is missing, unreadable or not of a schema this version understands."""


class Status(StrEnum):
    """Final status of one check."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    FLAKY = "flaky"
    INCOMPLETE = "incomplete"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    UNRUN = "unrun"
    DESELECTED = "deselected"


FAILING = frozenset({Status.FAILED, Status.ERROR, Status.FLAKY})
"""Statuses that make the verdict FAIL. A flaky check violated its requirement at least once."""


class Verdict(StrEnum):
    """What a run proved, from the most to the least: only PASS signs a release off."""

    PASS = "PASS"
    """Every requirement that applies to the profile ran and passed."""
    PARTIAL = "PARTIAL"
    """Every selected check passed, but the selection (paths, -k, -m) left applicable requirements out."""
    INCOMPLETE = "INCOMPLETE"
    """Nothing failed, but a selected check could not run here (environment, skip, interruption)."""
    FAIL = "FAIL"
    """A check failed, errored or passed only on rerun, or the suite itself is inconsistent."""
    ERROR = "ERROR"
    """The run could not perform its checks: build, render, cluster or deploy failed before them."""

    @property
    def label(self) -> str:
        return "SIGN-OFF PASS" if self is Verdict.PASS else self.value

    @property
    def exit_code(self) -> int:
        """The process exit status of a run with this verdict (``run``, plain ``pytest`` and ``report`` alike)."""
        return EXIT_CODES[self]


EXIT_CODES: dict[Verdict, int] = {
    Verdict.PASS: 0,
    Verdict.PARTIAL: 0,  # a targeted run whose checks all passed; its verdict still says what was left out
    Verdict.FAIL: 1,
    Verdict.INCOMPLETE: 2,
    Verdict.ERROR: 3,
}
"""Documented in README.md ("Verdicts and exit codes") and ``geocube-acceptance --help``; 4 stays pytest's
usage error (bad options: nothing ran, no report)."""


@dataclass
class Attempt:
    """One execution of a test; more than one means it was rerun."""

    status: Status
    phases: dict[str, str]
    duration: float
    message: str | None = None


@dataclass
class Attachment:
    """A diagnostics file. ``path`` is relative to the run directory when the file was copied into it."""

    label: str
    path: str
    copied: bool
    size: int | None = None


@dataclass
class TestResult:
    nodeid: str
    status: Status = Status.UNRUN
    requirement_id: str | None = None
    requirement: str | None = None
    area: str | None = None
    phases: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0
    started_at: str | None = None
    message: str | None = None
    longrepr: str | None = None
    skip_reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)

    __test__ = False  # not a pytest test class, despite the name

    @property
    def name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]


@dataclass
class CollectionError:
    nodeid: str
    message: str


IMPACTS = ("read-only", "test-data", "disruptive")
"""What a check does to the stack it runs against, from the least to the most: it only reads; it creates test
data and removes it again; or it disrupts (fills the database, pauses or scales workers, injects backlog or
garbage into shared queues, runs extra workers, leaves data behind). On a live stack only read-only checks run
unless the user allows more (``--allow``)."""


@dataclass
class Requirement:
    """One entry of the requirement catalogue, as it applied to this run's profile."""

    id: str
    area: str
    title: str
    applicable: bool = True
    not_applicable_because: str | None = None
    impact: str | None = None
    """One of IMPACTS (None in records written before impacts were declared)."""
    impact_why: str | None = None


@dataclass
class SessionError:
    """The run stopped before or outside its checks: what failed, in which phase, and the fix."""

    phase: str  # build | cluster | render | deploy | session
    message: str


@dataclass
class RunPhase:
    """Work the run did outside any check (build, deploy), timed on its own and never charged to a check."""

    name: str
    status: str  # passed | failed
    duration: float
    started_at: str | None = None
    log: str | None = None
    message: str | None = None
    during: str | None = None
    """The check whose setup triggered it; the phase's time is taken out of that check's duration."""


@dataclass
class SignOff:
    approver: str
    comment: str
    timestamp: str
    verdict: Verdict


@dataclass
class KnownDefect:
    """A register entry of a known defect of the system under test, and what this run saw of it."""

    id: str
    title: str
    requirement_id: str
    expected: bool
    """The register says it occurs on this run's version and profile."""
    observed: bool
    # The register's own words...
    reference: str = ""
    affects: str = ""
    explanation: str = ""
    # ...then what the run saw: the evidence, and the check that observed it (or ran without observing it).
    evidence: str | None = None
    nodeid: str | None = None


@dataclass
class HistoryDiff:
    """What changed since the previous run recorded in the history file."""

    previous_run_id: str | None = None
    previous_verdict: str | None = None
    newly_failing: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)
    new_tests: list[str] = field(default_factory=list)
    removed_tests: list[str] = field(default_factory=list)
    durations: dict[str, list[float]] = field(default_factory=dict)
    """Per test, its durations over the last runs, oldest first, this run last."""
    slower: list[str] = field(default_factory=list)
    """Tests markedly slower than their median over the previous runs."""
    key: dict[str, str] = field(default_factory=dict)
    """What the compared runs share: cluster, profile and selection (see ``reports.history.comparison_key``)."""
    incomparable_runs: int = 0
    """Earlier runs in the history left out of the comparison (another cluster, profile or selection)."""


@dataclass
class RunRecord:
    run_id: str
    started_at: str
    finished_at: str
    duration: float
    tests: list[TestResult] = field(default_factory=list)
    inventory: dict[str, Any] = field(default_factory=dict)
    collection_errors: list[CollectionError] = field(default_factory=list)
    interrupted: bool = False
    exit_status: int = 0
    command: list[str] = field(default_factory=list)
    history: HistoryDiff | None = None
    signoffs: list[SignOff] = field(default_factory=list)
    catalogue: list[Requirement] | None = None
    """The requirements of the suite for this profile; ``None``: unknown, so coverage cannot be proven."""
    session_errors: list[SessionError] = field(default_factory=list)
    phases: list[RunPhase] = field(default_factory=list)
    known_defects: list[KnownDefect] = field(default_factory=list)
    schema: int = SCHEMA_VERSION

    @property
    def verdict(self) -> Verdict:
        return compute_verdict(self)[0]

    @property
    def verdict_reasons(self) -> list[str]:
        return compute_verdict(self)[1]

    def selected_requirements(self) -> set[str]:
        """The requirement ids of the checks the run selected (ran, or tried to)."""
        return {t.requirement_id for t in self.tests if t.requirement_id and t.status is not Status.DESELECTED}

    def summary(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for test in self.tests:
            counts[test.status.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        verdict, reasons = compute_verdict(self)
        # Derived fields are written for readers of run.json; they are recomputed on load.
        data["verdict"] = verdict.value
        data["verdict_label"] = verdict.label
        data["verdict_reasons"] = reasons
        data["summary"] = self.summary()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise RecordError(
                f"run record schema {schema!r} is not supported: expected one of {READABLE_SCHEMAS}; "
                "regenerate it with the suite version that wrote it"
            )
        try:
            history = data.get("history")
            return cls(
                run_id=str(data["run_id"]),
                started_at=str(data["started_at"]),
                finished_at=str(data["finished_at"]),
                duration=float(data["duration"]),
                tests=[_test_from_dict(t) for t in data.get("tests", [])],
                inventory=dict(data.get("inventory") or {}),
                collection_errors=[CollectionError(**e) for e in data.get("collection_errors", [])],
                interrupted=bool(data.get("interrupted", False)),
                exit_status=int(data.get("exit_status", 0)),
                command=[str(a) for a in data.get("command", [])],
                history=HistoryDiff(**history) if history else None,
                signoffs=[
                    SignOff(
                        approver=s["approver"],
                        comment=s["comment"],
                        timestamp=s["timestamp"],
                        verdict=Verdict(s["verdict"]),
                    )
                    for s in data.get("signoffs", [])
                ],
                catalogue=None if data.get("catalogue") is None else [Requirement(**r) for r in data["catalogue"]],
                session_errors=[SessionError(**e) for e in data.get("session_errors", [])],
                phases=[RunPhase(**p) for p in data.get("phases", [])],
                known_defects=[KnownDefect(**d) for d in data.get("known_defects", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"run record is malformed: {type(exc).__name__}: {exc}") from exc


def _test_from_dict(data: dict[str, Any]) -> TestResult:
    known = {f.name for f in fields(TestResult)}
    data = {k: v for k, v in data.items() if k in known}
    data["status"] = Status(data.get("status", Status.UNRUN))
    data["attempts"] = [
        Attempt(
            status=Status(a["status"]),
            phases=dict(a.get("phases", {})),
            duration=float(a.get("duration", 0.0)),
            message=a.get("message"),
        )
        for a in data.get("attempts", [])
    ]
    data["attachments"] = [Attachment(**a) for a in data.get("attachments", [])]
    return TestResult(**data)


def compute_verdict(record: RunRecord) -> tuple[Verdict, list[str]]:
    """The verdict and its reasons; never more than the run proved.

    ERROR if the run could not perform its checks; FAIL if a check failed, errored or was flaky (or the
    suite is inconsistent); INCOMPLETE if a selected check could not run; PARTIAL if the selection left
    applicable requirements out; SIGN-OFF PASS only when every applicable requirement ran and passed.
    What was left out is named whatever the verdict.
    """
    by_status: dict[Status, list[str]] = {}
    for test in record.tests:
        by_status.setdefault(test.status, []).append(test.requirement_id or test.nodeid)
    coverage = _coverage(record)

    if record.session_errors:
        errors = [f"{e.phase} failed: {_one_line(e.message)}" for e in record.session_errors]
        not_run = [t.requirement_id or t.nodeid for t in record.tests if t.status in (Status.UNRUN, Status.ERROR)]
        if not_run:
            errors.append(f"{len(not_run)} check(s) could not run because of it: {', '.join(not_run)}")
        return Verdict.ERROR, errors + coverage.gaps

    failing: list[str] = []
    for status in (Status.FAILED, Status.ERROR, Status.FLAKY):
        if by_status.get(status):
            failing.append(f"{len(by_status[status])} {status.value}: {', '.join(by_status[status])}")
    if record.collection_errors:
        failing.append(
            f"{len(record.collection_errors)} collection error(s): "
            + ", ".join(e.nodeid for e in record.collection_errors)
        )
    failing += coverage.inconsistencies
    if failing:
        return Verdict.FAIL, failing + coverage.gaps + _defect_notes(record)

    unverified: list[str] = []
    explanations = {
        Status.INCOMPLETE: "environment not capable",
        Status.SKIPPED: "skipped",
        Status.XFAILED: "expected failure (known defect)",
        Status.XPASSED: "unexpectedly passed an xfail (review the marker)",
        Status.UNRUN: "not run",
    }
    for status, why in explanations.items():
        if by_status.get(status):
            unverified.append(f"{len(by_status[status])} {why}: {', '.join(by_status[status])}")
    if record.interrupted:
        unverified.append("the run was interrupted before it finished")
    if not any(t.status is not Status.DESELECTED for t in record.tests):
        unverified.append("no check was selected")
    if unverified:
        return Verdict.INCOMPLETE, unverified + coverage.gaps + _defect_notes(record)
    if coverage.gaps:
        passed = len(by_status.get(Status.PASSED, []))
        reasons = [f"all {passed} selected checks passed, but this is not a sign-off:", *coverage.gaps]
        return Verdict.PARTIAL, reasons + _defect_notes(record)
    return Verdict.PASS, [coverage.summary or f"all {len(record.tests)} checks passed", *_defect_notes(record)]


def _defect_notes(record: RunRecord) -> list[str]:
    """Known defects of the system under test that the checks met (or expected and did not): never hidden."""
    notes = []
    observed = [d.id for d in record.known_defects if d.observed]
    missing = [d.id for d in record.known_defects if not d.observed]
    if observed:
        notes.append(f"known defect(s) of the system under test observed (see Known defects): {', '.join(observed)}")
    if missing:
        notes.append(f"registered defect(s) expected here but not observed (fixed? review them): {', '.join(missing)}")
    return notes


def _one_line(text: str, limit: int = 400) -> str:
    """A multi-line message as one reason line (the report shows it whole in its own section)."""
    joined = " ".join(line.strip() for line in text.strip().splitlines() if line.strip()) or "no message"
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


@dataclass
class _Coverage:
    gaps: list[str] = field(default_factory=list)
    """Applicable requirements the run did not select, with why (or that the catalogue is unknown)."""
    inconsistencies: list[str] = field(default_factory=list)
    """Checks whose requirement is not in the catalogue: the suite and its catalogue disagree."""
    summary: str | None = None


def _coverage(record: RunRecord) -> _Coverage:
    """Compare the selected checks with the requirements that apply to the run's profile."""
    coverage = _Coverage()
    if record.catalogue is None:
        coverage.gaps.append(
            "coverage unknown: the run carries no requirement catalogue, so it cannot show that every "
            "requirement ran (run the suite through its framework, which loads suites/requirements.toml)"
        )
        return coverage
    known = {r.id for r in record.catalogue}
    unknown = sorted({t.requirement_id for t in record.tests if t.requirement_id and t.requirement_id not in known})
    if unknown:
        coverage.inconsistencies.append(
            f"check(s) verify requirement(s) missing from the catalogue: {', '.join(unknown)} "
            "(add them to suites/requirements.toml or fix the marker's id)"
        )
    selected = record.selected_requirements()
    # Why a deselected requirement was left out: a policy's reason (e.g. its impact on a live stack), or -k/-m.
    deselected = {t.requirement_id: t.skip_reason for t in record.tests if t.status is Status.DESELECTED}
    applicable = [r for r in record.catalogue if r.applicable]
    groups: dict[str, list[str]] = {}
    for requirement in applicable:
        if requirement.id in selected:
            continue
        if requirement.id not in deselected:
            label = "not collected (outside the paths given)"
        else:
            reason = deselected[requirement.id]
            label = f"not run, {reason}" if reason else "deselected (-k/-m)"
        groups.setdefault(label, []).append(requirement.id)
    order = ("deselected (-k/-m)", "not collected (outside the paths given)")  # after every policy's reason
    for label in sorted(groups, key=lambda label: order.index(label) + 1 if label in order else 0):
        coverage.gaps.append(f"{len(groups[label])} requirement(s) {label}: {', '.join(groups[label])}")
    not_applicable = [r for r in record.catalogue if not r.applicable]
    coverage.summary = f"all {len(applicable)} applicable requirements ran and passed"
    if not_applicable:
        coverage.summary += "; not applicable to this profile: " + ", ".join(
            f"{r.id} ({r.not_applicable_because})" for r in not_applicable
        )
    return coverage


def load_record(run_dir: Path) -> RunRecord:
    """Read ``run_dir/run.json`` (or a path to a record file itself)."""
    path = run_dir if run_dir.is_file() else run_dir / RUN_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RecordError(f"no run record at {path}: pass a run directory written by the suite") from exc
    except json.JSONDecodeError as exc:
        raise RecordError(f"run record {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordError(f"run record {path} holds a {type(data).__name__}, expected an object")
    return RunRecord.from_dict(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_record(record: RunRecord, run_dir: Path) -> Path:
    path = run_dir / RUN_JSON
    atomic_write_text(path, json.dumps(record.to_dict(), indent=2, sort_keys=False) + "\n")
    return path
