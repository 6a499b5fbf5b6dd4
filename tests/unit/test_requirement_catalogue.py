"""The requirement catalogue and the known-defect register stay in step with the suites, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.coverage import CATALOGUE_FILE, REGISTER_FILE, suites_dir
from reports import catalogue, defects
from reports.model import IMPACTS
from tests.unit.test_fault_catalogue import requirement_ids

SUITES = suites_dir()


def test_every_check_names_a_catalogue_requirement_and_every_requirement_has_a_check() -> None:
    listed = {entry.id for entry in catalogue.load(SUITES / CATALOGUE_FILE)}
    in_suites = requirement_ids()
    assert in_suites - listed == set(), "checks whose requirement is not in the catalogue (verdict FAIL)"
    assert listed - in_suites == set(), "catalogue requirements no check verifies (never a SIGN-OFF PASS)"


def test_every_requirement_declares_its_impact_and_its_area_folder() -> None:
    for entry in catalogue.load(SUITES / CATALOGUE_FILE):
        assert entry.impact in IMPACTS and entry.impact_why, entry.id
        assert (SUITES / entry.area).is_dir(), f"{entry.id}: no suites/{entry.area}"


def test_every_known_defect_is_observed_by_a_catalogue_requirement() -> None:
    ids = {entry.id for entry in catalogue.load(SUITES / CATALOGUE_FILE)}
    for entry in defects.load(SUITES / REGISTER_FILE):
        assert entry.requirement in ids, entry.id
        assert entry.versions and entry.reference and entry.explanation, entry.id


def test_the_rollback_defect_matches_the_log_line_geocube_writes() -> None:
    """The evidence pattern against the line seen on the embedded default (local storage), and not a lookalike."""
    [entry] = [e for e in defects.load(SUITES / REGISTER_FILE) if e.id == "GEOCUBE-ROLLBACK-UNWRITTEN-CONTAINER"]
    path = "/geocube-storage/ingestion/layout-7c273339/195/-1954/7a01f818/609ff22c.tif"
    seen = (
        "2026-11-30T04:22:53Z - DEBUG | Status: ABORTED - Message:   Event RollbackFailed Rollback."
        f"DeletePendingRemoteContainers.opSubFncDeleteContainer[{path}].failed to remove file: remove {path}: "
        "no such file or directory..."
    )
    assert entry.evidence.search(seen)
    assert not entry.evidence.search(seen.replace("no such file or directory", "permission denied"))
    assert entry.expected("1.0.3", {"messaging": "pgqueue", "storage": "local"})
    assert not entry.expected("1.0.3", {"messaging": "pubsub", "storage": "gs"})


def test_a_catalogue_without_impact_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "requirements.toml"
    path.write_text('[[requirement]]\nid = "DB-X"\narea = "database"\ntitle = "x"\n')
    with pytest.raises(catalogue.CatalogueError, match="impact None must be one of read-only, test-data, disruptive"):
        catalogue.load(path)
