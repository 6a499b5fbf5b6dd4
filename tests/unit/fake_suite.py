"""Helpers for fake suites run through pytester with the report plugin (no cluster)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from reports.model import Requirement

# Inner runs load only the report plugin (no framework): pytest-asyncio warns about its unset loop scope at
# configure time, which the outer filterwarnings=error would turn into a crash of the inner run.
PLUGIN_ARGS = ("-p", "reports.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider")

_AREAS = {"DB": "database", "MSG": "messaging", "AS": "autoscaling", "STO": "storage", "PLAT": "platform"}


def with_catalogue(
    pytester: pytest.Pytester,
    *ids: str,
    titles: dict[str, str] | None = None,
    not_applicable: dict[str, str] | None = None,
) -> list[Requirement]:
    """Give the fake suite a requirement catalogue, as the framework does (``fixtures.coverage``): a conftest
    whose ``pytest_configure`` (after the report plugin's) hands it to the recorder. Without one, the coverage
    of a run is unknown and its verdict PARTIAL at best.

    ``titles``: id -> title (default: "<id> holds"); ``not_applicable``: id -> why it does not apply here.
    """
    titles, not_applicable = titles or {}, not_applicable or {}
    catalogue = [
        Requirement(
            id=rid,
            area=_AREAS.get(rid.split("-")[0], "platform"),
            title=titles.get(rid, f"{rid} holds"),
            applicable=rid not in not_applicable,
            not_applicable_because=not_applicable.get(rid),
        )
        for rid in ids
    ]
    pytester.makeconftest(
        f"""
        import pytest
        from reports.model import Requirement
        from reports.plugin import get_recorder

        CATALOGUE = {[asdict(r) for r in catalogue]!r}

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            get_recorder(config).set_catalogue([Requirement(**r) for r in CATALOGUE])
        """
    )
    return catalogue


def check(
    name: str,
    requirement: str,
    *body: str,
    title: str | None = None,
    area: str | None = None,
    prerequisite: str | None = None,
    args: str = "",
) -> str:
    """The source of one check of a fake suite: ``def name(args):`` running ``body`` (a statement a line; ``pass``
    without any), marked as verifying ``requirement`` (described by ``title``), of ``area`` and building on
    ``prerequisite`` where given.
    """
    marks = [f"@pytest.mark.{area}"] if area else []
    if prerequisite:
        marks.append(f"@pytest.mark.prerequisite({prerequisite!r})")
    marker_args = ", ".join(repr(arg) for arg in (requirement, title) if arg is not None)
    statements = [f"    {statement}" for statement in body or ("pass",)]
    return "\n".join([*marks, f"@pytest.mark.requirement({marker_args})", f"def {name}({args}):", *statements])


def module(*parts: str) -> str:
    """A fake suite's test module: ``import pytest``, then ``parts`` (imports, fixtures, checks) a blank line apart."""
    return "\n\n".join(textwrap.dedent(part).strip() for part in ("import pytest", *parts)) + "\n"


def load(run_dir: Path) -> dict[str, Any]:
    """The run record (``run.json``) a run wrote in ``run_dir``."""
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data
