"""The register of known defects of the system under test (``suites/known_defects.toml``).

A check that meets a failure of the system asks the register whether it is a known one
(:meth:`DefectWitness.recognise`): only an exact match of the entry's evidence pattern counts, so a known
defect never hides a new failure. The report lists what was observed, and every entry expected on the run's
version and profile that its check ran without observing (fixed upstream? review the entry).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.catalogue import read_toml
from reports.errors import ReportError
from reports.model import KnownDefect


class RegisterError(ReportError, ValueError):
    """The register file is missing or malformed; the message names the file, the entry and the fix."""


@dataclass(frozen=True, kw_only=True)
class DefectEntry:
    """One entry of the register, as read from the file (keywords only: five of its fields are strings)."""

    id: str
    title: str
    requirement: str
    versions: tuple[str, ...]
    affects: Mapping[str, tuple[str, ...]]
    evidence: re.Pattern[str]
    explanation: str
    reference: str

    def expected(self, version: str | None, profile: Mapping[str, str]) -> bool:
        """Whether the register says this defect occurs on ``version`` with ``profile``."""
        if version is not None and self.versions and version not in self.versions:
            return False
        return all(profile.get(key) in values for key, values in self.affects.items())

    def describe_scope(self) -> str:
        scope = [f"Geocube {', '.join(self.versions)}"] if self.versions else []
        scope += [f"{key} {' or '.join(values)}" for key, values in self.affects.items()]
        return "; ".join(scope) or "every version and profile"


@dataclass
class Observation:
    defect_id: str
    nodeid: str
    evidence: str


@dataclass
class DefectWitness:
    """What one check may recognise: the register's entries for its requirement."""

    nodeid: str
    entries: list[DefectEntry]
    observations: list[Observation] = field(default_factory=list)

    def recognise(self, text: str) -> DefectEntry | None:
        """The known defect whose evidence pattern ``text`` matches (recorded as observed), else ``None``."""
        for entry in self.entries:
            found = entry.evidence.search(text)
            if found:
                line = next((ln for ln in text.splitlines() if found.group(0) in ln), found.group(0))
                self.observations.append(Observation(entry.id, self.nodeid, line.strip()))
                return entry
        return None


def load(path: Path) -> list[DefectEntry]:
    data = read_toml(path, "known-defect register", RegisterError)
    entries = [_entry(raw, f"{path}: defect #{i + 1}") for i, raw in enumerate(data.get("defect", []))]
    ids = [e.id for e in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RegisterError(f"{path}: defect id(s) listed twice: {duplicates}")
    return entries


def summarise(
    entries: list[DefectEntry],
    observations: list[Observation],
    *,
    version: str | None,
    profile: Mapping[str, str],
    ran: Mapping[str, str],
) -> list[KnownDefect]:
    """One line per entry observed, or expected here and checked by a check that ran (``ran``: requirement → nodeid)."""
    seen = {o.defect_id: o for o in observations}
    out: list[KnownDefect] = []
    for entry in entries:
        observation = seen.get(entry.id)
        expected = entry.expected(version, profile)
        if observation is None and not (expected and entry.requirement in ran):
            continue
        out.append(
            KnownDefect(
                id=entry.id,
                title=entry.title,
                requirement_id=entry.requirement,
                observed=observation is not None,
                expected=expected,
                evidence=observation.evidence if observation else None,
                nodeid=observation.nodeid if observation else ran.get(entry.requirement),
                reference=entry.reference,
                affects=entry.describe_scope(),
                explanation=entry.explanation,
            )
        )
    return out


def _entry(raw: Any, where: str) -> DefectEntry:
    if not isinstance(raw, dict):
        raise RegisterError(f"{where} is not a table")
    missing = [k for k in ("id", "title", "requirement", "evidence", "explanation", "reference") if not raw.get(k)]
    if missing:
        raise RegisterError(f"{where} ({raw.get('id')!r}): missing {missing}")
    unknown = set(raw) - {"id", "title", "requirement", "versions", "affects", "evidence", "explanation", "reference"}
    if unknown:
        raise RegisterError(f"{where} ({raw['id']}): unknown key(s) {sorted(unknown)}")
    try:
        pattern = re.compile(str(raw["evidence"]))
    except re.error as exc:
        raise RegisterError(f"{where} ({raw['id']}): evidence is not a regular expression: {exc}") from None
    affects = raw.get("affects", {})
    if not isinstance(affects, dict):
        raise RegisterError(f"{where} ({raw['id']}): affects must map a profile key to a list of values")
    return DefectEntry(
        id=str(raw["id"]),
        title=str(raw["title"]),
        requirement=str(raw["requirement"]),
        versions=tuple(str(v) for v in raw.get("versions", [])),
        affects={str(k): tuple(str(x) for x in v) for k, v in affects.items()},
        evidence=pattern,
        explanation=str(raw["explanation"]),
        reference=str(raw["reference"]),
    )
