"""Shared by every self-test: the runs they start use the embedded cluster, whatever kubeconfig the machine has."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.suite_runs import embedded_cluster_unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Self-tests marked ``cluster`` are skipped, with the reason, where the embedded cluster cannot run."""
    reason = embedded_cluster_unavailable()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True, scope="session")
def embedded_cluster_only() -> Iterator[None]:
    """Suite runs pick a cluster like kubectl ($KUBECONFIG, ~/.kube/config); self-tests must never reach those.

    Set in the environment, so that the pytest and gc processes the self-tests start inherit it; an explicit
    ``--kubeconfig`` of a test still wins (CLI > env).
    """
    previous = os.environ.get("GEOCUBE_KUBECONFIG")
    os.environ["GEOCUBE_KUBECONFIG"] = "embedded"
    yield
    if previous is None:
        del os.environ["GEOCUBE_KUBECONFIG"]
    else:
        os.environ["GEOCUBE_KUBECONFIG"] = previous
