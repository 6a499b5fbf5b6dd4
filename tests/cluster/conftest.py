"""Fixtures for self-tests that need the embedded cluster (root on Linux only)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.cluster import EmbeddedCluster


@pytest.fixture(scope="session")
def embedded_cluster() -> Iterator[EmbeddedCluster]:
    """The running embedded cluster; started here (and stopped at the end) if it was not running."""
    cluster = EmbeddedCluster(progress=lambda message: print(f"[cluster] {message}"))
    was_running = cluster.is_healthy()
    cluster.up()
    yield cluster
    if not was_running and os.environ.get("GEOCUBE_ACCEPTANCE_KEEP_CLUSTER") != "1":
        problems = cluster.down()
        assert not problems, f"cluster down reported problems: {problems}"


@pytest.fixture(scope="session")
def kubectl(embedded_cluster: EmbeddedCluster) -> Kubectl:
    """Our kubectl, as the cluster admin."""
    return Kubectl(embedded_cluster)


class Kubectl:
    """Run kubectl against the embedded cluster and return stdout; raise with stderr on failure."""

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.cluster = cluster

    def __call__(self, *args: str, input_text: str | None = None, timeout: float = 120) -> str:
        return self.cluster.kubectl(*args, input_text=input_text, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        from localcluster.gobuild import ensure_binaries

        argv = [str(ensure_binaries().path("kubectl")), f"--kubeconfig={self.cluster.kubeconfig}", *args]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"selftest-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    # Pods may start before the namespace's default ServiceAccount exists: wait for it.
    kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="session")
def toolbox_image(embedded_cluster: EmbeddedCluster) -> str:
    """A locally built Debian image with busybox and curl, imported into the cluster's containerd."""
    from localcluster.toolbox import ensure_toolbox_image

    return ensure_toolbox_image(embedded_cluster)


@pytest.fixture(scope="session")
def admin_kubeconfig(embedded_cluster: EmbeddedCluster) -> Path:
    return embedded_cluster.kubeconfig
