"""Shared by every self-test: the runs they start use the embedded cluster, whatever kubeconfig the machine has."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


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
