"""The layers import downwards only (README, "Architecture"): every import, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.suite_runs import REPO

# What each layer may import besides itself; geocube_acceptance.locations (where things live) is for all.
ALLOWED = {
    "localcluster": set(),
    "geocube_stack": {"localcluster"},
    "reports": set(),
    "fixtures": {"localcluster", "geocube_stack", "reports"},
    "suites": {"localcluster", "geocube_stack", "reports", "fixtures"},
}
SHARED = "geocube_acceptance.locations"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in ``path``, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    ours = set(ALLOWED) | {"geocube_acceptance"}
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sorted((REPO / layer).rglob("*.py"))
        for line, module in imported_modules(path)
        if (top := module.split(".")[0]) in ours
        and top != layer
        and top not in ALLOWED[layer]
        and not (module == SHARED or module.startswith(SHARED + "."))
    ]
    assert not wrong, f"{layer} may import only {sorted(ALLOWED[layer]) or 'itself'} and {SHARED}:\n" + "\n".join(wrong)
