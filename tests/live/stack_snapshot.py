"""A snapshot of a stack as its owners see it: objects, replicas, pods, catalog and queue counts, connections."""

from __future__ import annotations

from typing import Any

COUNTS = (
    "SELECT 'pgq_jobs', count(*) FROM pgq_jobs UNION ALL SELECT 'jobs', count(*) FROM geocube.jobs "
    "UNION ALL SELECT 'aoi', count(*) FROM geocube.aoi UNION ALL SELECT 'records', count(*) FROM geocube.records "
    "UNION ALL SELECT 'palette', count(*) FROM geocube.palette "
    # The stack's own pools may open and close connections; the suite's must all be gone.
    "UNION ALL SELECT 'suite connections', count(*) FROM pg_stat_activity WHERE application_name LIKE '{app}%'"
)


def snapshot(kube: Any, namespace: str) -> dict[str, Any]:
    """Everything an owner of the stack would compare, to the object generation and pod name."""
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
        "leases": sorted(
            lease.metadata.name
            for lease in kube.coordination.list_namespaced_lease(namespace, _request_timeout=15).items
        ),
        "pods": sorted(
            (p.metadata.name, p.status.phase, sum(c.restart_count for c in p.status.container_statuses or []))
            for p in pods
        ),
        "counts": counts.split(),
    }


def restored(state: dict[str, Any]) -> dict[str, Any]:
    """What a stack that was paused and restored must match: generations and pod names change, nothing else.

    Scaling a Deployment to 0 and back bumps its generation and replaces its pods; their number, app and
    phase, every other object and every row count must be as before.
    """
    return {
        **state,
        "deployments": {name: replicas for name, (_, replicas) in state["deployments"].items()},
        "replicationcontrollers": {name: replicas for name, (_, replicas) in state["replicationcontrollers"].items()},
        "pods": sorted((name.rsplit("-", 2)[0], phase) for name, phase, _ in state["pods"]),
    }
