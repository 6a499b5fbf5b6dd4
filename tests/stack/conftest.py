"""Fixtures of the reference stack's self-tests on the embedded cluster (root on Linux only).

Two levels (STYLE.md §2): the cluster and the built, imported images live once per session; a
deployed stack lives once per (messaging, storage) profile pair in a namespace of its own, which is
deleted afterwards (after collecting diagnostics when a test of that pair failed).
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.stack.support import SELFTEST_OVERRIDES, STORAGE_ROOT, DeployedStack, StackEnv

if TYPE_CHECKING:
    from localcluster.cluster import EmbeddedCluster

NOT_ROOT_REASON = (
    "the embedded cluster, its containerd and mmdebstrap image builds need root on Linux "
    f"(running as uid {os.geteuid() if hasattr(os, 'geteuid') else '?'} on {platform.system()})"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if platform.system() == "Linux" and os.geteuid() == 0:
        return
    for item in items:
        if item.get_closest_marker("cluster") is not None and "tests/stack" in str(item.path):
            item.add_marker(pytest.mark.skip(reason=NOT_ROOT_REASON))


@pytest.fixture(scope="session")
def stack_env() -> StackEnv:
    """The running embedded cluster with every stack image built and imported into its containerd."""
    from geocube_stack.images import build_stack_images, import_stack_images
    from localcluster.cluster import EmbeddedCluster, ensure_running

    ensure_running(progress=lambda message: print(f"[cluster] {message}"))
    cluster = EmbeddedCluster()
    started = time.monotonic()
    images = build_stack_images(progress=lambda message: print(f"[images] {message}"))
    timings = dict(images.timings)
    imported = import_stack_images(images, str(cluster.layout.containerd_socket))
    timings.update({f"import:{k}": v for k, v in imported.items()})
    timings["build+import"] = time.monotonic() - started
    return StackEnv(cluster, images.params(), timings)


@pytest.fixture(scope="module")
def deployed(request: pytest.FixtureRequest, stack_env: StackEnv) -> Iterator[DeployedStack]:
    """The stack of ``request.param`` = (messaging, storage), deployed and ready in a fresh namespace."""
    from geocube_stack import deploy
    from geocube_stack.params import render_params

    messaging, storage = request.param
    namespace = deploy.new_namespace_name(f"stack-{messaging}-{storage}")
    storage_dir = STORAGE_ROOT / namespace if storage == "local" else None
    cluster = stack_env.cluster
    # Registered before anything is created: a half-created namespace is still removed.
    failures_before = request.session.testsfailed
    request.addfinalizer(
        lambda: _teardown(cluster, namespace, storage_dir, request.session.testsfailed > failures_before)
    )
    params = render_params(
        messaging,
        storage,
        images=stack_env.image_params,
        local_host_path=str(storage_dir) if storage_dir else None,
        overrides=SELFTEST_OVERRIDES,
    )
    deploy.create_namespace(cluster, namespace, {"geocube-acceptance/profile": f"{messaging}-{storage}"})
    deployment = deploy.deploy(cluster, namespace, messaging, storage, params)
    deploy.wait_ready(deployment, timeout=600, progress=lambda message: print(f"[{namespace}] {message}"))
    print(f"[{namespace}] all workloads ready {deployment.seconds_to_ready:.1f} s after the first apply")
    yield DeployedStack(deployment, messaging, storage, storage_dir, stack_env.image_params)


def _teardown(cluster: EmbeddedCluster, namespace: str, storage_dir: Path | None, failed: bool) -> None:
    """Diagnostics first when a test of this stack failed, then delete; errors are warnings."""
    from geocube_stack import deploy

    if failed:
        try:
            print(
                f"[{namespace}] diagnostics before deletion:\n"
                f"{deploy.diagnostics(deploy.Deployment(cluster, namespace, '?', '?', {}))}"
            )
        except Exception as exc:  # diagnostics never hide the test's own failure
            print(f"[{namespace}] diagnostics failed: {exc}")
    try:
        deploy.delete_namespace(cluster, namespace)
    except Exception as exc:
        print(f"[{namespace}] WARNING: deleting the namespace failed: {exc}")
    if storage_dir is not None:
        shutil.rmtree(storage_dir, ignore_errors=True)
