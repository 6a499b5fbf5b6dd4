"""Shared fixtures of the unit self-tests (no cluster)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No GEOCUBE_* variable of the developer's shell leaks into these tests (or their inner pytest runs)."""
    for name in list(os.environ):
        if name.startswith("GEOCUBE_") and not name.startswith("GEOCUBE_ACCEPTANCE_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture(autouse=True)
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No KUBECONFIG and an empty home: the developer's clusters are never chosen like kubectl would."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    yield


@pytest.fixture(autouse=True)
def stack_storage_root(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The embedded default's stack storage lives in a temporary directory: a janitor under test removes there."""
    import fixtures.embedded

    monkeypatch.setattr(fixtures.embedded, "STORAGE_ROOT", tmp_path_factory.mktemp("stack-storage"))
    yield
