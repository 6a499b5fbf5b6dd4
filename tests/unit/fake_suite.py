"""Helpers for fake suites run through pytester with the report plugin (no cluster)."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from reports.model import Requirement

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
