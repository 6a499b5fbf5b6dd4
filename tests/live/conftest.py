"""Fixtures of the live-stack self-tests: the embedded cluster's client and a stack deployed and kept."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.labels import RUN_ID_LABEL
from tests.suite_runs import embedded_kube, run_suites


@pytest.fixture(scope="module")
def kube() -> Iterator[Any]:
    """An API client of the running embedded cluster (root on Linux only)."""
    with embedded_kube() as client:
        yield client


@pytest.fixture(scope="module")
def live_namespace(kube: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A stack deployed by the suite and kept: from now on, a stack the runs under test did not create."""
    run_id = f"live-base-{secrets.token_hex(2)}"
    run_suites(
        ["suites/platform"], ["-k", "version", "--keep-namespace", "always"], tmp_path_factory.mktemp("base"), run_id
    )
    listed = kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}", _request_timeout=15).items
    [namespace] = [ns.metadata.name for ns in listed]
    try:
        yield namespace
    finally:
        kube.core.delete_namespace(namespace, _request_timeout=15)
        from fixtures.embedded import remove_storage_dir

        remove_storage_dir(namespace)


@pytest.fixture(scope="module")
def live_password(kube: Any, live_namespace: str) -> str:
    """The live stack's database password, as its owners set it (read from the cluster, never passed to runs)."""
    from fixtures.deployed import server_config

    return server_config(kube, live_namespace).db_password
