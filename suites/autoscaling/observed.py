"""What the pod watch saw the autoscaler do: its updates' bursts of pods, the live count, the timeline."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from fixtures.classify import classify_pod
from fixtures.deployed import AutoscalerConfig
from fixtures.errors import WaitAbandoned, WorkloadFailed
from fixtures.podwatch import PodEvent, PodWatch
from fixtures.stack import Stack
from fixtures.waits import now, workload_failed
from suites.autoscaling.configuration import failing_every_update

# A burst of pod creations belongs to one autoscaler update when its pods appear this close together.
BURST_GAP = 1.0
# The autoscaler's Kubernetes client keeps client-go's default rate limit (rest.InClusterConfig: 5 requests/s),
# and qbas reads the ReplicationController before each pod it creates and deletes pods one by one: an update
# that creates ``step`` pods lasts at least 2 x step / 5 s whatever -update says (16 pods: 6.4 s).
CLIENT_QPS = 5.0
REQUESTS_PER_CREATE = 2
# Beyond the updates' own time: the scheduler, kwok or kubelet, and a loaded 2-core node.
SCALING_SLACK = 90.0


def growing_update_seconds(config: AutoscalerConfig) -> float:
    """How long one growing update of the autoscaler lasts at least: -update, or its client's rate limit."""
    return max(config.update_seconds, config.step * REQUESTS_PER_CREATE / CLIENT_QPS)


def scale_up_timeout(config: AutoscalerConfig, pods: int) -> float:
    """The bound on growing by ``pods``: one update per step, three more, and slack."""
    return growing_update_seconds(config) * (math.ceil(max(0, pods) / config.step) + 3) + SCALING_SLACK


def scale_down_timeout(config: AutoscalerConfig, pods: int) -> float:
    """The bound on deleting ``pods`` once the backlog is gone: two updates, one request per pod, and slack."""
    return 2 * config.update_seconds + pods / CLIENT_QPS + SCALING_SLACK


def wait_scaled_up(
    stack: Stack, watch: PodWatch, config: AutoscalerConfig, target: int, *, since: datetime, why: str
) -> float:
    """Until the autoscaler's pods (``watch``) number ``target``; returns when. Fails the check with the cause,
    as soon as the system shows it: a worker that cannot run (qbas does not grow past a Pending pod), or an
    autoscaler whose every update since ``since`` failed."""
    __tracebackhide__ = True
    try:
        return watch.wait_until(
            lambda w: len(w.live()) >= target,
            timeout=scale_up_timeout(config, target - len(watch.live())),
            description=f"{target} consolidater pods ({watch.selector}) {why}",
            fail_on=lambda pod: classify_pod(pod, now()),
            give_up=lambda: failing_every_update(stack, config, since),
        )
    except WorkloadFailed as err:
        pytest.fail(worker_cannot_run(stack, err, config), pytrace=False)
    except WaitAbandoned as err:
        pytest.fail(str(err), pytrace=False)


def wait_scaled_down(watch: PodWatch, config: AutoscalerConfig) -> float:
    """Until the autoscaler's pods are down to -min once the backlog is gone; returns when."""
    pods = len(watch.live())
    return watch.wait_until(
        lambda w: len(w.live()) <= config.minimum,
        timeout=scale_down_timeout(config, pods),
        description=f"the autoscaler to delete its {pods} pods ({watch.selector}) once the backlog is gone",
    )


def worker_cannot_run(stack: Stack, err: WorkloadFailed, config: AutoscalerConfig) -> str:
    """Why scaling stopped: a worker the autoscaler made cannot run (and qbas does not grow past a Pending pod)."""
    assert err.failure is not None
    detail = workload_failed(stack.kube, stack.namespace, err.failure, stack.masker)
    return (
        f"a consolidater pod the autoscaler made from ReplicationController/{config.rc}'s template cannot run, and "
        f"the autoscaler does not grow while one of its pods is Pending: {detail}"
    )


def bursts(watch: PodWatch, since: float) -> list[int]:
    """Sizes of the groups of pod creations seen after ``since`` (one group per autoscaler update)."""
    times = sorted(e.at for e in watch.events if e.kind == "ADDED" and e.at >= since)
    groups: list[int] = []
    last = -math.inf
    for at in times:
        if at - last > BURST_GAP:
            groups.append(0)
        groups[-1] += 1
        last = at
    return groups


def replay(watch: PodWatch) -> Iterator[tuple[PodEvent, int]]:
    """Every watched event in time order with the number of live pods right after it."""
    live: set[str] = set()
    for event in sorted(watch.events, key=lambda e: e.at):
        if event.kind == "ADDED":
            live.add(event.pod)
        else:
            live.discard(event.pod)
        yield event, len(live)


def timeline(watch: PodWatch, origin: float, backlog_at: list[tuple[float, int]]) -> list[dict[str, Any]]:
    """Pods (live) and backlog at each pod event and each backlog reading, in seconds since ``origin``, in time
    order; each point carries both series (the last value known then), so neither line is broken by the other's
    points. Pods before any event are those the watch listed first (0 when none)."""
    changes = [(event.at, pods) for event, pods in replay(watch)]
    points: list[tuple[float, int | None, int | None]] = [
        (at, pods, _last(backlog_at, at)) for at, pods in changes if at >= origin
    ]
    points += [(at, _last(changes, at, default=0), backlog) for at, backlog in backlog_at]
    return [
        {"t": round(at - origin, 3), "pods": pods, "backlog": backlog}
        for at, pods, backlog in sorted(points, key=lambda p: p[0])
    ]


def _last(series: list[tuple[float, int]], at: float, default: int | None = None) -> int | None:
    """The value of a time series (in time order) at ``at``: its last one at or before it."""
    return next((value for when, value in reversed(series) if when <= at), default)


def wait_burst_end(watch: PodWatch, config: AutoscalerConfig) -> float:
    """Until the update creating pods has ended (no pod added for 2 x BURST_GAP); returns when.

    An update's pods come one by one, 0.4 s apart at the autoscaler's rate limit: a pod found Pending at the
    start of an update is followed by the rest of that update's pods, which are not growth past it.
    """
    quiet = 2 * BURST_GAP

    def ended(w: PodWatch) -> bool:
        added = [e.at for e in w.events if e.kind == "ADDED"]
        return not added or time.monotonic() - max(added) >= quiet

    return watch.wait_until(
        ended,
        timeout=growing_update_seconds(config) + quiet + SCALING_SLACK,
        description=f"the autoscaler's update to finish creating pods ({watch.selector}; none added for {quiet:g} s)",
    )


def wait_idle(watch: PodWatch, config: AutoscalerConfig) -> float:
    """Until the autoscaler's pods are down to -min before a backlog (an earlier check's may still be going)."""
    return watch.wait_until(
        lambda w: len(w.live()) <= config.minimum,
        timeout=3 * config.update_seconds + 60,
        description=f"the autoscaler to be idle ({watch.selector} pods <= min {config.minimum}) before the backlog",
    )
