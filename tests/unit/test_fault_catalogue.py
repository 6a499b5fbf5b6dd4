"""The fault catalogue (tests/faults) stays in step with the manifests and the suites, without a cluster."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.faults.test_faults import FAULTS, Fault
from tests.suite_runs import REPO

# Checks without a fault of their own, and why (see the note in tests/faults/test_faults.py).
WITHOUT_OWN_FAULT: set[str] = set()


def requirement_ids() -> set[str]:
    """Every ``@pytest.mark.requirement("ID", ...)`` under suites/."""
    found = set()
    for path in (REPO / "suites").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "requirement"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
    return found


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_fault_edit_applies_exactly_once(fault: Fault) -> None:
    for relative, old, _ in fault.edits:
        text = Path(REPO / "manifests" / relative).read_text()
        assert text.count(old) == 1, f"{relative}: {old!r} occurs {text.count(old)} times"


def test_every_check_has_a_fault_or_a_stated_reason() -> None:
    ids = requirement_ids()
    covered = {rid for fault in FAULTS for rid in fault.expected}
    assert covered <= ids, f"faults expect unknown checks: {sorted(covered - ids)}"
    assert ids - covered == WITHOUT_OWN_FAULT, f"checks without a fault: {sorted(ids - covered)}"
