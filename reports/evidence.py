"""Per-test evidence: values, scaling timelines and diagnostics files shown next to a requirement."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from reports.errors import ReportError
from reports.model import Attachment

DIAGNOSTICS_DIR = "diagnostics"


class EvidenceError(ReportError, ValueError):
    """Evidence that cannot be recorded as given (not JSON, malformed timeline point, missing file)."""


class Evidence:
    """What a check observed, recorded for the report.

    Obtained through the ``evidence`` fixture or :func:`reports.get_evidence` (for framework fixtures that
    collect diagnostics). Values must be JSON-serializable; secrets are masked when the record is written.
    """

    def __init__(self, nodeid: str, *, run_dir: Path | None) -> None:
        self.nodeid = nodeid
        self._run_dir = run_dir
        self.values: dict[str, Any] = {}
        self.timelines: dict[str, list[dict[str, Any]]] = {}
        self.attachments: list[Attachment] = []

    def add(self, key: str, value: Any) -> None:
        """Record ``value`` under ``key`` (a later call with the same key replaces it)."""
        if not isinstance(key, str) or not key:
            raise EvidenceError(f"evidence key must be a non-empty string, got {key!r}")
        try:
            # Round-trip now so a bad value fails in the test that produced it, not at session end.
            self.values[key] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise EvidenceError(
                f"evidence {key!r} for {self.nodeid} is not JSON-serializable ({exc}); "
                f"convert it first, e.g. str() or a dict of plain values. Got a {type(value).__name__}"
            ) from exc

    def timeline(self, name: str, points: Iterable[Mapping[str, Any]]) -> None:
        """Record a scaling timeline: points ``{"t": seconds or ISO time, "pods": int, "backlog": number}``.

        ``pods`` or ``backlog`` may be ``None`` for "no observation" (a failed read), which the chart
        shows as a gap rather than as zero. ISO times become seconds since the first point.
        """
        normalized: list[dict[str, Any]] = []
        iso_times: list[tuple[dict[str, Any], datetime]] = []
        for index, point in enumerate(points):
            missing = {"t", "pods", "backlog"} - point.keys()
            if missing:
                raise EvidenceError(
                    f"timeline {name!r} point {index} lacks {sorted(missing)}: each point needs t, pods and "
                    f"backlog (None for no observation). Got {dict(point)!r}"
                )
            entry = dict(point)
            raw_t = point["t"]
            if isinstance(raw_t, str):
                try:
                    iso_times.append((entry, datetime.fromisoformat(raw_t)))
                except ValueError as exc:
                    raise EvidenceError(
                        f"timeline {name!r} point {index}: t={raw_t!r} is neither seconds nor an ISO time"
                    ) from exc
            elif isinstance(raw_t, bool) or not isinstance(raw_t, int | float) or not math.isfinite(raw_t):
                raise EvidenceError(f"timeline {name!r} point {index}: t={raw_t!r} must be a finite number")
            for series in ("pods", "backlog"):
                value = point[series]
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                ):
                    raise EvidenceError(
                        f"timeline {name!r} point {index}: {series}={value!r} must be a number or None "
                        "(None = no observation)"
                    )
            normalized.append(entry)
        if iso_times:
            if len(iso_times) != len(normalized):
                raise EvidenceError(f"timeline {name!r} mixes ISO times and seconds; use one or the other")
            try:
                origin = min(when for _, when in iso_times)
                for entry, when in iso_times:
                    entry["at"], entry["t"] = entry["t"], (when - origin).total_seconds()
            except TypeError as exc:  # naive and aware datetimes cannot be compared
                raise EvidenceError(f"timeline {name!r} mixes times with and without a time zone") from exc
        normalized.sort(key=lambda p: float(p["t"]))
        try:
            self.timelines[name] = json.loads(json.dumps(normalized, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise EvidenceError(f"timeline {name!r} has a value that is not JSON-serializable: {exc}") from exc

    def attach(self, path: str | os.PathLike[str], label: str | None = None) -> Attachment:
        """Keep a diagnostics file or directory (events, pod logs, object dumps) with the report.

        The file is copied into the run directory at once, so it survives the cleanup that follows.
        Without a run directory (``--geocube-no-report``) only its path is recorded.
        """
        source = Path(path)
        if not source.exists():
            raise EvidenceError(
                f"cannot attach {str(source)!r} to {self.nodeid}: no such file or directory. "
                "Attach diagnostics after writing them and before cleaning up."
            )
        label = label or source.name
        if self._run_dir is None:
            attachment = Attachment(label=label, path=str(source.resolve()), copied=False, size=_size(source))
        else:
            target_dir = self._run_dir / DIAGNOSTICS_DIR / slugify(self.nodeid)
            target_dir.mkdir(parents=True, exist_ok=True)
            target = _free_name(target_dir / source.name)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
            attachment = Attachment(
                label=label, path=target.relative_to(self._run_dir).as_posix(), copied=True, size=_size(target)
            )
        self.attachments.append(attachment)
        return attachment

    def is_empty(self) -> bool:
        return not (self.values or self.timelines or self.attachments)


def slugify(nodeid: str) -> str:
    """A file-system-safe, readable directory name for a test."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._")
    return slug[:150] or "test"


def _free_name(target: Path) -> Path:
    candidate, n = target, 1
    while candidate.exists():
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        n += 1
    return candidate


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
