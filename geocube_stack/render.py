"""A minimal ``{{NAME}}`` renderer for the stack's own self-tests and benchmark.

The suite's framework (``fixtures/render.py``) is the real renderer; this one follows the same
rules so the templates work with both: placeholders in comment lines are documentation and are not
replaced, a multi-line value continues at the indentation of its placeholder's line, every
placeholder is mandatory, and objects come out in dependency (kind) order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geocube_stack.errors import StackError
from geocube_stack.params import template_dirs

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Apply order: identities and configuration, RBAC, services, then workloads (delete in reverse).
KIND_ORDER = (
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Role",
    "RoleBinding",
    "Service",
    "ReplicationController",
    "Deployment",
    "Job",
)


@dataclass(frozen=True)
class Rendered:
    """Rendered objects in apply order and the placeholders the templates used."""

    objects: tuple[dict[str, Any], ...]
    used: frozenset[str]

    def to_yaml(self) -> str:
        return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in self.objects)


def template_files(directories: Iterable[Path]) -> list[Path]:
    """Every ``*.yaml`` of the given directories, in directory order then sorted by name."""
    files: list[Path] = []
    for directory in directories:
        found = sorted(p for p in directory.glob("*.yaml") if p.is_file())
        if not found:
            raise StackError(f"template directory {directory} holds no *.yaml file")
        files += found
    return files


def placeholders(files: Iterable[Path]) -> dict[str, list[str]]:
    """Placeholder name → the ``file:line`` places that use it (comment lines excluded)."""
    found: dict[str, list[str]] = {}
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            for match in PLACEHOLDER.finditer(line):
                found.setdefault(match.group(1), []).append(f"{path.parent.name}/{path.name}:{number}")
    return found


def render_text(text: str, params: Mapping[str, str], where: str, missing: dict[str, list[str]]) -> str:
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]

        def value(match: re.Match[str], number: int = number, indent: str = indent) -> str:
            name = match.group(1)
            if name not in params:
                missing.setdefault(name, []).append(f"{where}:{number}")
                return f"MISSING_{name}"
            return params[name].replace("\n", "\n" + indent)

        out.append(PLACEHOLDER.sub(value, line))
    return "\n".join(out) + "\n"


def render_profile(messaging: str, storage: str, params: Mapping[str, str]) -> Rendered:
    """Render ``base`` + ``messaging/<messaging>`` + ``storage/<storage>`` with ``params``."""
    files = template_files(template_dirs(messaging, storage))
    used = placeholders(files)
    missing: dict[str, list[str]] = {}
    objects: list[dict[str, Any]] = []
    for path in files:
        where = f"{path.parent.name}/{path.name}"
        text = render_text(path.read_text(), params, where, missing)
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise StackError(f"{where}: rendered YAML does not parse: {exc}") from exc
        objects += docs
    if missing:
        lines = [f"  {name}: used at {', '.join(places)}" for name, places in sorted(missing.items())]
        raise StackError("missing template parameter(s); every {{NAME}} is mandatory:\n" + "\n".join(lines))
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    ordered = sorted(objects, key=lambda o: rank.get(str(o.get("kind")), len(rank)))
    return Rendered(tuple(ordered), frozenset(used))
