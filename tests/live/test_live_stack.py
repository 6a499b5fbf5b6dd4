"""A live stack is left exactly as found: the whole suite with --existing-namespace, default impact.

The suite deploys a stack and keeps it (it stands for a stack the suite did not create); a snapshot is
taken — objects and their generations, replica counts, pods and their restarts, the catalog's and the
queue's row counts — then every suite runs against it as a live stack, and the snapshot is taken again.
Only read-only checks may run; the others are named as left out, and the verdict is PARTIAL.

    sudo .venv/bin/pytest tests/live -m cluster
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reports.catalogue import load
from tests.live.stack_snapshot import snapshot
from tests.suite_runs import REPO, outcomes, run_suites

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

# The read-only checks, as the catalogue declares them (the checks are kept in step with it by tests/unit).
READ_ONLY = {e.id for e in load(REPO / "suites" / "requirements.toml") if e.impact == "read-only"}


def test_the_whole_suite_leaves_a_live_stack_as_found(kube: Any, live_namespace: str, tmp_path: Path) -> None:
    before = snapshot(kube, live_namespace)
    record = run_suites(["suites"], ["--existing-namespace", live_namespace], tmp_path, "live-check")
    after = snapshot(kube, live_namespace)
    assert after == before, f"the live stack changed:\nbefore {before}\nafter  {after}"
    checks = outcomes(record)
    ran = {rid for rid, t in checks.items() if t["status"] != "deselected"}
    assert ran == READ_ONLY, ran
    assert all(checks[rid]["status"] == "passed" for rid in READ_ONLY), {r: checks[r]["status"] for r in READ_ONLY}
    left_out = {rid: t["skip_reason"] for rid, t in checks.items() if t["status"] == "deselected"}
    assert all(f"on the live stack {live_namespace}: impact" in reason for reason in left_out.values()), left_out
    assert record["verdict"] == "PARTIAL"
    assert record["phases"] == [p for p in record["phases"] if p["name"] != "build"], "a live stack needs no build"
