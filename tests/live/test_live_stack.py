"""A live stack is left exactly as found: the whole suite with --existing-namespace, default impact.

The suite deploys a stack and keeps it (it stands for a stack the suite did not create); a snapshot is
taken — objects and their generations, replica counts, pods and their restarts, the catalog's and the
queue's row counts — then every suite runs against it as a live stack, and the snapshot is taken again.
Only read-only checks may run; the others are named as left out, and the verdict is PARTIAL.

    sudo .venv/bin/pytest tests/live -m cluster
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.labels import RUN_ID_LABEL
from tests.suite_runs import embedded_kube, outcomes, run_suites

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

READ_ONLY = {"DB-AUTH", "MSG-QUEUES", "PLAT-VERSION", "PLAT-AUTOSCALER-RBAC", "PLAT-SERVICE-ACCOUNTS"}
COUNTS = (
    "SELECT 'pgq_jobs', count(*) FROM pgq_jobs UNION ALL SELECT 'jobs', count(*) FROM geocube.jobs "
    "UNION ALL SELECT 'aoi', count(*) FROM geocube.aoi UNION ALL SELECT 'records', count(*) FROM geocube.records "
    "UNION ALL SELECT 'palette', count(*) FROM geocube.palette "
    # The stack's own pools may open and close connections; the suite's must all be gone.
    "UNION ALL SELECT 'suite connections', count(*) FROM pg_stat_activity WHERE application_name = '{app}'"
)


@pytest.fixture(scope="module")
def kube() -> Iterator[Any]:
    """An API client of the running embedded cluster (root on Linux only)."""
    with embedded_kube() as client:
        yield client


@pytest.fixture
def live_namespace(kube: Any, tmp_path: Path) -> Iterator[str]:
    """A stack deployed by the suite and kept: from now on, a stack the runs under test did not create."""
    run_id = "live-base"
    run_suites(["suites/platform"], ["-k", "version", "--keep-namespace", "always"], tmp_path / "base", run_id)
    listed = kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}", _request_timeout=15).items
    [namespace] = [ns.metadata.name for ns in listed]
    try:
        yield namespace
    finally:
        kube.core.delete_namespace(namespace, _request_timeout=15)
        from fixtures.embedded import remove_storage_dir

        remove_storage_dir(namespace)


def snapshot(kube: Any, namespace: str) -> dict[str, Any]:
    from fixtures.access import APPLICATION_NAME, exec_in_pod

    def named(items: Any) -> dict[str, Any]:
        return {i.metadata.name: (i.metadata.generation, getattr(i.spec, "replicas", None)) for i in items}

    pods = kube.core.list_namespaced_pod(namespace, _request_timeout=15).items
    [database] = [p.metadata.name for p in pods if (p.metadata.labels or {}).get("app") == "postgresql"]
    query = COUNTS.format(app=APPLICATION_NAME)
    counts = exec_in_pod(kube, namespace, database, ["psql", "-U", "postgres", "-d", "geocube", "-Atc", query])
    return {
        "deployments": named(kube.apps.list_namespaced_deployment(namespace, _request_timeout=15).items),
        "replicationcontrollers": named(
            kube.core.list_namespaced_replication_controller(namespace, _request_timeout=15).items
        ),
        "secrets": sorted(s.metadata.name for s in kube.core.list_namespaced_secret(namespace).items),
        "configmaps": sorted(c.metadata.name for c in kube.core.list_namespaced_config_map(namespace).items),
        "pods": sorted(
            (p.metadata.name, p.status.phase, sum(c.restart_count for c in p.status.container_statuses or []))
            for p in pods
        ),
        "counts": counts.split(),
    }


def test_the_whole_suite_leaves_a_live_stack_as_found(kube: Any, live_namespace: str, tmp_path: Path) -> None:
    before = snapshot(kube, live_namespace)
    record = run_suites(["suites"], ["--existing-namespace", live_namespace], tmp_path, "live-check")
    after = snapshot(kube, live_namespace)
    assert after == before, f"the live stack changed:\nbefore {before}\nafter  {after}"
    checks = outcomes(record)
    ran = {rid for rid, t in checks.items() if t["status"] != "deselected"}
    assert ran == READ_ONLY, ran
    assert all(checks[rid]["status"] == "passed" for rid in READ_ONLY), {r: checks[r]["status"] for r in READ_ONLY}
    left_out = {rid: t["skip_reason"] for rid, t in checks.items() if t["status"] == "deselected"}
    assert all(f"on the live stack {live_namespace}: impact" in reason for reason in left_out.values()), left_out
    assert record["verdict"] == "PARTIAL"
    assert record["phases"] == [p for p in record["phases"] if p["name"] != "build"], "a live stack needs no build"
