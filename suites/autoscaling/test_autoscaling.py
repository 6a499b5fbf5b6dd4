"""The queue-driven autoscaler: pods follow a controlled backlog up (by steps, to the target, never above
max) and back down to min, watched as it happens.

The backlog is made of rows in ``pgq_jobs`` that no consolidater can take: the check holds a
``FOR KEY SHARE`` lock on them, which the workers' ``FOR UPDATE SKIP LOCKED`` skips, while the
autoscaler's ``count(*)`` still counts them. Releasing the backlog is one DELETE in that transaction.
Every parameter (queue, ratio, step, max, min, update period) is read from the deployed autoscaler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.access import Database
from fixtures.deployed import AUTOSCALED_LABEL, AutoscalerConfig, ServerConfig
from fixtures.podwatch import PodEvent, PodWatch
from fixtures.stack import Stack
from reports.plugin import incapable
from suites.autoscaling.backlog import HeldBacklog

pytestmark = [pytest.mark.autoscaling, pytest.mark.slow]

# Bounded load: at most this many queued jobs, hence pods, whatever max and step say.
MAX_BACKLOG = 40
# A burst of pod creations belongs to one autoscaler update when its pods appear this close together.
BURST_GAP = 1.0


@pytest.fixture
def pgqueue_backlog(deployed_server: ServerConfig) -> None:
    """Skip as INCOMPLETE where the environment cannot show a backlog to the autoscaler."""
    if deployed_server.messaging != "pgqueue":
        incapable(
            "with Pub/Sub messaging the autoscaler reads the backlog from Cloud Monitoring "
            "(num_undelivered_messages), which the Pub/Sub emulator does not provide: scaling cannot be observed. "
            "Run with --messaging pgqueue (or against real Pub/Sub) to verify autoscaling."
        )


def backlog_size(config: AutoscalerConfig) -> int:
    """Jobs enough to need several steps and to reach max when possible, bounded by MAX_BACKLOG."""
    pods = min(config.maximum + 2, 3 * config.step + 1, MAX_BACKLOG)
    return max(1, min(MAX_BACKLOG, math.ceil(pods * config.ratio)))


def expected_pods(config: AutoscalerConfig, backlog: int) -> int:
    """qbas's steady state for a constant backlog, starting from no pod: ceil(B/ratio), clamped to [min, max]."""
    return max(config.minimum, min(config.maximum, math.ceil(backlog / config.ratio)))


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
    """Pods (live) and backlog after each event, in seconds since ``origin``."""
    points: list[dict[str, Any]] = []
    for event, pods in replay(watch):
        if event.at < origin:
            continue
        backlog = next((b for at, b in reversed(backlog_at) if at <= event.at), None)
        points.append({"t": round(event.at - origin, 3), "pods": pods, "backlog": backlog})
    for at, backlog in backlog_at:
        points.append({"t": round(at - origin, 3), "pods": None, "backlog": backlog})
    return points


@pytest.mark.requirement(
    "AS-SCALE-UP-DOWN",
    "for a backlog the autoscaler creates consolidater pods up to ceil(backlog/ratio), never above max, by at most "
    "step per update, and deletes every pod it made (down to min) once the backlog is gone",
)
@pytest.mark.usefixtures("pgqueue_backlog")
def test_autoscaler_follows_the_backlog(
    deployed_stack: Stack,
    deployed_autoscaler: AutoscalerConfig,
    deployed_server: ServerConfig,
    database: Database,
    evidence: Any,
) -> None:
    config = deployed_autoscaler
    assert config.queue == deployed_server.consolidations_queue, (
        f"the autoscaler measures the backlog of queue {config.queue!r}, but the server publishes consolidation "
        f"orders to {deployed_server.consolidations_queue!r}: it would never scale for real jobs. Fix: "
        f"-queue={deployed_server.consolidations_queue}"
    )
    size = backlog_size(config)
    target = expected_pods(config, size)
    update = config.update_seconds
    evidence.add(
        "autoscaler",
        {"queue": config.queue, "ratio": config.ratio, "step": config.step, "max": config.maximum,
         "min": config.minimum, "update": update},
    )  # fmt: skip
    evidence.add("backlog", size)
    evidence.add("expected pods", target)
    selector = f"{AUTOSCALED_LABEL}={config.rc}"
    with PodWatch(deployed_stack.kube, deployed_stack.namespace, selector) as watch:
        watch.wait_until(
            lambda w: len(w.live()) <= config.minimum,
            timeout=3 * update + 60,
            description=f"the autoscaler to be idle ({selector} pods <= min {config.minimum}) before the backlog",
        )
        with HeldBacklog(database, config.queue, size) as backlog:
            visible = backlog.make_due()
            steps_needed = math.ceil(max(0, target - len(watch.live())) / config.step)
            reached = watch.wait_until(
                lambda w: len(w.live()) >= target,
                timeout=update * (steps_needed + 3) + 90,
                description=f"{target} consolidater pods ({selector}) for a backlog of {size} (ratio {config.ratio}, "
                f"step {config.step}, max {config.maximum})",
            )
            # One more update with the same backlog: the count must hold, not overshoot.
            time.sleep(update + 2)
            peak = max((pods for _, pods in replay(watch)), default=0)
            first_pod = min((e.at for e in watch.events if e.kind == "ADDED" and e.at >= visible), default=None)
            growth = bursts(watch, visible)
            released = backlog.release()
        gone = watch.wait_until(
            lambda w: len(w.live()) <= config.minimum,
            timeout=2 * update + 90,
            description=f"the autoscaler to delete its pods ({selector}) once the backlog is gone",
        )
        made = watch.ever_added()
        deleted = {e.pod for e in watch.events if e.kind in ("DELETING", "DELETED")}
        points = timeline(watch, visible, [(visible, size), (released, 0)])
    evidence.timeline("consolidater pods", points)
    evidence.add("scale-up latency (s)", None if first_pod is None else round(first_pod - visible, 2))
    evidence.add("time to target (s)", round(reached - visible, 2))
    evidence.add("pods created per update", growth)
    evidence.add("time to scale down (s)", round(gone - released, 2))
    assert peak <= config.maximum, f"{peak} pods at once, above -max={config.maximum}"
    assert peak <= target, f"{peak} pods at once for a backlog of {size}: more than the {target} qbas aims at"
    assert all(g <= config.step for g in growth), (
        f"pods created per update {growth}: more than -step={config.step} at once"
    )
    assert made <= deleted | watch.live(), "some pods vanished without a deletion being observed"
    survivors = made - deleted
    assert len(survivors) <= config.minimum, f"pods the autoscaler made were not deleted: {sorted(survivors)}"
