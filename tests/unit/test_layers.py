"""The layers import downwards only (README, "Architecture"): every import, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.suite_runs import REPO

# What each layer may import besides itself; where things live and the errors' one base are for all.
ALLOWED = {
    "localcluster": set(),
    "geocube_stack": {"localcluster"},
    "reports": set(),
    "fixtures": {"localcluster", "geocube_stack", "reports"},
    "suites": {"localcluster", "geocube_stack", "reports", "fixtures"},
}
SHARED = ("geocube_acceptance.locations", "geocube_acceptance.errors")


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
        and not module.startswith(SHARED)
    ]
    assert not wrong, (
        f"{layer} may import only {sorted(ALLOWED[layer]) or 'itself'} and {', '.join(SHARED)}:\n" + "\n".join(wrong)
    )


def test_every_error_class_of_the_project_has_the_one_base() -> None:
    """Each package's errors derive from its root, and every root from geocube_acceptance.errors.AcceptanceError."""
    import importlib
    import inspect

    from geocube_acceptance.errors import AcceptanceError

    stray = []
    for layer in (*ALLOWED, "geocube_acceptance"):
        for path in sorted((REPO / layer).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            if path.name == "__main__.py" or (name.startswith("suites") and "test_" in path.name):
                continue  # a program's entry point, or a check module (collected by pytest, not imported here)
            module = importlib.import_module(name)
            stray += [
                f"{name}.{cls.__name__}"
                for cls in vars(module).values()
                if inspect.isclass(cls)
                and cls.__module__ == name
                and issubclass(cls, Exception)
                and not issubclass(cls, (AcceptanceError, Warning))
            ]
    assert not stray, f"errors outside the one base (derive them from their package's root): {stray}"
