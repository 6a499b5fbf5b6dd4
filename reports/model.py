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

SCHEMA_VERSION = 1
RUN_JSON = "run.json"

ENVIRONMENT_LIMITATION = "ENVIRONMENT-LIMITATION:"
"""Skip-reason prefix meaning "this environment cannot perform the check": counted INCOMPLETE, never PASS."""


class RecordError(Exception):
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
    PASS = "PASS"
    FAIL = "FAIL"
    INCOMPLETE = "INCOMPLETE"

    @property
    def label(self) -> str:
        return "SIGN-OFF PASS" if self is Verdict.PASS else self.value


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


@dataclass
class SignOff:
    approver: str
    comment: str
    timestamp: str
    verdict: Verdict


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
    schema: int = SCHEMA_VERSION

    @property
    def verdict(self) -> Verdict:
        return compute_verdict(self)[0]

    @property
    def verdict_reasons(self) -> list[str]:
        return compute_verdict(self)[1]

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
        if schema != SCHEMA_VERSION:
            raise RecordError(
                f"run record schema {schema!r} is not supported: expected {SCHEMA_VERSION}; "
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
    """SIGN-OFF PASS only if every check passed; FAIL if any failed, errored or was flaky; else INCOMPLETE.

    Returns the verdict and the human-readable reasons for it.
    """
    by_status: dict[Status, list[str]] = {}
    for test in record.tests:
        by_status.setdefault(test.status, []).append(test.requirement_id or test.nodeid)

    failing: list[str] = []
    for status in (Status.FAILED, Status.ERROR, Status.FLAKY):
        if by_status.get(status):
            failing.append(f"{len(by_status[status])} {status.value}: {', '.join(by_status[status])}")
    if record.collection_errors:
        failing.append(
            f"{len(record.collection_errors)} collection error(s): "
            + ", ".join(e.nodeid for e in record.collection_errors)
        )
    if failing:
        return Verdict.FAIL, failing

    unverified: list[str] = []
    explanations = {
        Status.INCOMPLETE: "environment not capable",
        Status.SKIPPED: "skipped",
        Status.XFAILED: "expected failure (known defect)",
        Status.XPASSED: "unexpectedly passed an xfail (review the marker)",
        Status.UNRUN: "not run",
        Status.DESELECTED: "deselected (-k/-m)",
    }
    for status, why in explanations.items():
        if by_status.get(status):
            unverified.append(f"{len(by_status[status])} {why}: {', '.join(by_status[status])}")
    if record.interrupted:
        unverified.append("the run was interrupted before it finished")
    if not record.tests:
        unverified.append("no check was collected")
    if unverified:
        return Verdict.INCOMPLETE, unverified
    return Verdict.PASS, [f"all {len(record.tests)} checks passed"]


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
