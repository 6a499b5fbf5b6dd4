"""The requirement catalogue (``suites/requirements.toml``): which requirements a run must cover to sign off.

The catalogue is data the framework hands to the recorder with the run's profile; the verdict compares it
with the checks the run selected (:func:`reports.model.compute_verdict`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.errors import ReportError
from reports.model import IMPACTS, Requirement

_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")


class CatalogueError(ReportError, ValueError):
    """The catalogue file is missing or malformed; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class CatalogueEntry:
    id: str
    area: str
    title: str
    applies_when: Mapping[str, tuple[str, ...]]
    why_not: str | None
    impact: str
    impact_why: str | None

    def for_profile(self, profile: Mapping[str, str]) -> Requirement:
        """This entry as it applies to ``profile`` (e.g. ``{"messaging": "pgqueue", "storage": "local"}``)."""
        requirement = Requirement(self.id, self.area, self.title, impact=self.impact, impact_why=self.impact_why)
        for key, values in self.applies_when.items():
            if profile.get(key) not in values:
                requirement.applicable = False
                requirement.not_applicable_because = self.why_not or f"only with {key} {' or '.join(values)}"
        return requirement


def load(path: Path) -> list[CatalogueEntry]:
    """Read and check the catalogue: ids unique and well-formed, every entry with an area and a title."""
    data = read_toml(path, "requirement catalogue", CatalogueError)
    entries: list[CatalogueEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(data.get("requirement", [])):
        entry = _entry(raw, f"{path}: requirement #{index + 1}")
        if entry.id in seen:
            raise CatalogueError(f"{path}: requirement {entry.id} is listed twice")
        seen.add(entry.id)
        entries.append(entry)
    if not entries:
        raise CatalogueError(f"requirement catalogue {path} lists no [[requirement]]")
    return entries


def read_toml(path: Path, what: str, error: type[ValueError]) -> dict[str, Any]:
    """A reviewed data file of the suites, or ``error`` naming the file and what is wrong with it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"no {what} at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None


def for_profile(entries: list[CatalogueEntry], profile: Mapping[str, str]) -> list[Requirement]:
    return [entry.for_profile(profile) for entry in entries]


def _entry(raw: Any, where: str) -> CatalogueEntry:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where} is not a table")
    rid, area, title = raw.get("id"), raw.get("area"), raw.get("title")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise CatalogueError(f"{where}: id {rid!r} must look like AREA-NAME (capitals, digits, dashes)")
    if not isinstance(area, str) or not area or not isinstance(title, str) or not title:
        raise CatalogueError(f"{where} ({rid}): area and title are required strings")
    applies = raw.get("applies_when", {})
    if not isinstance(applies, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in applies.values()
    ):
        raise CatalogueError(f"{where} ({rid}): applies_when must map a profile key to a list of values")
    why_not = raw.get("why_not")
    impact, impact_why = raw.get("impact"), raw.get("impact_why")
    if impact not in IMPACTS:
        raise CatalogueError(f"{where} ({rid}): impact {impact!r} must be one of {', '.join(IMPACTS)}")
    unknown = set(raw) - {"id", "area", "title", "applies_when", "why_not", "impact", "impact_why"}
    if unknown:
        raise CatalogueError(f"{where} ({rid}): unknown key(s) {sorted(unknown)}")
    return CatalogueEntry(
        id=rid,
        area=area,
        title=title,
        applies_when={str(k): tuple(v) for k, v in applies.items()},
        why_not=str(why_not) if why_not is not None else None,
        impact=str(impact),
        impact_why=str(impact_why) if impact_why is not None else None,
    )
