"""One pod from a ReplicationController's template, made the way the autoscaler makes its workers.

With pgqueue the consolidater RC has 0 replicas: its template only ever runs when the autoscaler
creates bare pods from it, so the deploy's readiness wait never starts it. A trial pod proves the
template runs: same spec (the autoscaler copies ``spec.template.spec`` and nothing else), labels of
our own instead of ``go-k8s-pod-rc`` (the autoscaler must not count or delete it), deleted at once.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Mapping
from typing import Any

from fixtures.classify import classify_pod, readiness
from fixtures.errors import WorkloadFailed
from fixtures.journal import Remove
from fixtures.labels import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from fixtures.stack import Stack
from fixtures.waits import now, watch_until, workload_failed

# A worker that exits even once before it is ready is broken: do not wait for a crash loop.
TRIAL_CRASH_RESTARTS = 1


def run_trial_pod(stack: Stack, rc: Mapping[str, Any], *, timeout: float) -> float:
    """Start a pod from ``rc``'s template, wait until it is Ready, delete it; returns seconds to Ready.

    A pod failure (bad image, crash, unschedulable) raises WorkloadFailed with the reason and the
    container's last log lines; not Ready within ``timeout`` raises WaitTimeout.
    """
    kube, namespace = stack.kube, stack.namespace
    rc_name = rc["metadata"]["name"]
    name = f"{rc_name}-acceptance-trial-{secrets.token_hex(3)}"
    pod = {
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, "app.kubernetes.io/component": "acceptance-trial"},
        },
        "spec": copy.deepcopy(rc["spec"]["template"]["spec"]),
    }
    started = time.monotonic()
    with stack.changes(Remove("Pod", name)):  # journaled: a SIGKILLed run's trial pod is deleted by the next run
        kube.core.create_namespaced_pod(namespace, pod, _request_timeout=15)
        return _wait_ready(stack, name, rc_name, timeout=timeout) - started


def _wait_ready(stack: Stack, name: str, rc_name: str, *, timeout: float) -> float:
    """Until pod ``name`` is Ready (returns the monotonic time); its failure raises WorkloadFailed."""
    kube, namespace = stack.kube, stack.namespace
    try:
        watch_until(
            kube.core.list_namespaced_pod,
            namespace,
            field_selector=f"metadata.name={name}",
            description=f"pod {name} from ReplicationController/{rc_name}'s template to be Ready",
            timeout=timeout,
            # Items of a list carry no "kind"; readiness() needs it to judge a Pod.
            predicate=lambda pods: name in pods and readiness({**pods[name], "kind": "Pod"})[0],
            fail_on=lambda obj: classify_pod(obj, now(), crash_restarts=TRIAL_CRASH_RESTARTS),
        )
        return time.monotonic()
    except WorkloadFailed as err:
        assert err.failure is not None  # watch_until raises with the failure it recognised
        raise workload_failed(kube, namespace, err.failure, stack.masker) from None
