"""Pause every consumer of the consolidations queue, so that a job's tasks stay PENDING, then restore.

The autoscaler is scaled to zero first (it would recreate workers), then the consolidater
ReplicationController, and the bare pods the autoscaler made are deleted (it makes them again on demand).
The replica counts are journaled in the cluster before they change (``fixtures.journal``): they are
restored on exit, even when the check fails, on SIGINT/SIGTERM, and by the next run or ``gc`` after a
SIGKILL; the queued orders are then consumed (and skipped as cancelled).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from fixtures.deployed import AUTOSCALED_LABEL, AutoscalerConfig
from fixtures.journal import Rescale
from fixtures.podwatch import PodWatch
from fixtures.stack import Stack
from fixtures.waits import watch_until


@contextlib.contextmanager
def paused_consumers(stack: Stack, autoscaler: AutoscalerConfig, *, timeout: float = 120) -> Iterator[None]:
    kube, namespace = stack.kube, stack.namespace
    name = autoscaler.workload.split("/", 1)[1]
    deployment = kube.apps.read_namespaced_deployment(name, namespace, _request_timeout=15)
    rc = kube.core.read_namespaced_replication_controller(autoscaler.rc, namespace, _request_timeout=15)
    autoscaler_replicas, rc_replicas = deployment.spec.replicas or 0, rc.spec.replicas or 0
    # Journaled before scaling: undone at the end of the block, on any signal, or by the next run after a SIGKILL.
    undos = (
        Rescale("Deployment", name, autoscaler_replicas),
        Rescale("ReplicationController", autoscaler.rc, rc_replicas),
    )
    try:
        with stack.changes(*undos):
            kube.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": 0}}, _request_timeout=15)
            kube.core.patch_namespaced_replication_controller_scale(
                autoscaler.rc, namespace, {"spec": {"replicas": 0}}, _request_timeout=15
            )
            kube.core.delete_collection_namespaced_pod(
                namespace,
                label_selector=f"{AUTOSCALED_LABEL}={autoscaler.rc}",
                grace_period_seconds=0,
                _request_timeout=15,
            )
            rc_selector = ",".join(f"{k}={v}" for k, v in (rc.spec.selector or {}).items())
            for selector, what in (
                (",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items()), "autoscaler pods"),
                (rc_selector, "consolidater pods of the ReplicationController"),
                (f"{AUTOSCALED_LABEL}={autoscaler.rc}", "consolidater pods made by the autoscaler"),
            ):
                with PodWatch(kube, namespace, selector) as watch:
                    watch.wait_until(lambda w: not w.phases(), timeout=timeout, description=f"no {what} ({selector})")
            yield
    finally:
        # Leave the stack as found: the next check may judge the workloads' readiness.
        watch_until(
            kube.apps.list_namespaced_deployment,
            namespace,
            description=f"Deployment/{name} available again ({autoscaler_replicas} replicas)",
            timeout=timeout,
            predicate=lambda objs: _ready(objs.get(name), "availableReplicas") >= autoscaler_replicas,
            field_selector=f"metadata.name={name}",
        )
        watch_until(
            kube.core.list_namespaced_replication_controller,
            namespace,
            description=f"ReplicationController/{autoscaler.rc} ready again ({rc_replicas} replicas)",
            timeout=timeout,
            predicate=lambda objs: _ready(objs.get(autoscaler.rc), "readyReplicas") >= rc_replicas,
            field_selector=f"metadata.name={autoscaler.rc}",
        )


def _ready(obj: Mapping[str, Any] | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0)
