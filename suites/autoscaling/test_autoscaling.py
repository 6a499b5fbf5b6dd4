"""The queue-driven autoscaler: pods follow a controlled backlog up (by steps, to the target, never above
max) and back down to min, and a shrink with work left spares the busy pods, watched as it happens.

The backlog is made of rows in ``pgq_jobs`` that no consolidater can take: the check holds a
``FOR KEY SHARE`` lock on them, which the workers' ``FOR UPDATE SKIP LOCKED`` skips, while the
autoscaler's ``count(*)`` still counts them. Releasing the backlog is one DELETE in that transaction.
Every parameter (queue, ratio, step, max, min, update period) is read from the deployed autoscaler.
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from fixtures.access import Database, PodVolumeStorage, Storage
from fixtures.checks import input_raster, prepare_input, put_input
from fixtures.deployed import AUTOSCALED_LABEL, AutoscalerConfig, ServerConfig
from fixtures.podwatch import PodWatch
from fixtures.stack import Stack
from geocube_stack.client import GeocubeClient
from geocube_stack.geotiff import write_geotiff
from reports.plugin import incapable
from suites.autoscaling.backlog import HeldBacklog
from suites.autoscaling.busy import BlockingInputs, CostReader
from suites.autoscaling.configuration import (
    controller_problem,
    flag_problems,
    recent_errors,
    require_pgqueue_backlog,
    usable_autoscaler,
)
from suites.autoscaling.observed import (
    bursts,
    replay,
    timeline,
    wait_idle,
    wait_scaled_down,
    wait_scaled_up,
)

pytestmark = [pytest.mark.autoscaling, pytest.mark.slow]

# Bounded load: at most this many queued jobs, hence pods, whatever max and step say.
MAX_BACKLOG = 40
# Real jobs held busy while the autoscaler shrinks (bounded: each blocks one consolidater).
BUSY_JOBS = 2
# An idle pgqueue consumer looks for work every 10 s (pgqueue.Consumer.Pull).
PGQ_IDLE_POLL = 10.0


@pytest.fixture
def pgqueue_backlog(deployed_server: ServerConfig) -> None:
    """Skip as INCOMPLETE where the environment cannot show a backlog to the autoscaler."""
    require_pgqueue_backlog(deployed_server)


@pytest.fixture
def configured_autoscaler(
    deployed_stack: Stack, deployed_autoscaler: AutoscalerConfig, deployed_server: ServerConfig
) -> AutoscalerConfig:
    """An autoscaler whose flags can work for this stack: otherwise the scaling checks fail at once, naming why."""
    return usable_autoscaler(deployed_stack, deployed_autoscaler, deployed_server)


@pytest.fixture
def shared_volume(stack_storage: Storage) -> PodVolumeStorage:
    """The shared local storage volume, where a named pipe can hold a consolidater busy."""
    if not isinstance(stack_storage, PodVolumeStorage):
        incapable(
            "holding consolidaters busy in a job needs an input they block on: a named pipe on the shared local "
            "storage volume. With gs:// storage there is no such volume, so which pods a shrink spares cannot be "
            "observed. Run with --storage local to verify it."
        )
    return stack_storage


def backlog_size(config: AutoscalerConfig) -> int:
    """Jobs enough to need several steps and to reach max when possible, bounded by MAX_BACKLOG."""
    pods = min(config.maximum + 2, 3 * config.step + 1, MAX_BACKLOG)
    return max(1, min(MAX_BACKLOG, math.ceil(pods * config.ratio)))


def expected_pods(config: AutoscalerConfig, backlog: int) -> int:
    """qbas's steady state for a constant backlog, starting from no pod: ceil(B/ratio), clamped to [min, max]."""
    return max(config.minimum, min(config.maximum, math.ceil(backlog / config.ratio)))


@pytest.mark.requirement("AS-CONFIG")
def test_autoscaler_is_configured_for_this_stack(
    deployed_stack: Stack, deployed_autoscaler: AutoscalerConfig, deployed_server: ServerConfig, evidence: Any
) -> None:
    """Read-only: the flags against qbas and the server, the ReplicationController, the last updates' log."""
    config = deployed_autoscaler
    evidence.add(
        "autoscaler",
        {"queue": config.queue, "rc": config.rc, "ns": config.namespace, "ratio": config.ratio, "step": config.step,
         "max": config.maximum, "min": config.minimum, "update": config.update_seconds,
         "backlog from": "pgqueue" if config.pgq_connection else f"Pub/Sub project {config.ps_project or '(none)'}"},
    )  # fmt: skip
    problems = flag_problems(config, deployed_server, deployed_stack.namespace)
    problems += filter(None, [controller_problem(deployed_stack, config)])
    emulated = deployed_server.messaging == "pubsub" and bool(deployed_server.pubsub_emulator_host)
    errors = recent_errors(deployed_stack, config)
    evidence.add("errors logged over the last updates", errors or "none")
    if errors and not emulated:
        problems.append(
            "the autoscaler logged errors over its last updates (its own account of why it does not scale):\n  "
            + "\n  ".join(errors)
        )
    assert not problems, f"{config.workload}: " + "\n".join(problems)
    if emulated:
        # Its flags are right, but every update fails to read a metric the emulator lacks: the log says nothing
        # about the deployment, so this requirement cannot be judged whole here.
        incapable(
            "with the Pub/Sub emulator the autoscaler reads its backlog from Cloud Monitoring, which the emulator "
            "does not provide: each update logs an error, so its log cannot show whether it works (its flags were "
            "checked and are right). Run with --messaging pgqueue (or against real Pub/Sub) to verify it."
        )


@pytest.mark.prerequisite("AS-CONFIG")
@pytest.mark.requirement("AS-SCALE-UP-DOWN")
@pytest.mark.usefixtures("pgqueue_backlog")
def test_autoscaler_follows_the_backlog(
    deployed_stack: Stack, configured_autoscaler: AutoscalerConfig, database: Database, evidence: Any
) -> None:
    config = configured_autoscaler
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
        wait_idle(watch, config)
        with HeldBacklog(deployed_stack, database, config.queue, size) as backlog:
            visible = backlog.make_due()
            since = datetime.now(UTC)
            reached = wait_scaled_up(
                deployed_stack,
                watch,
                config,
                target,
                since=since,
                why=f"for a backlog of {size} (ratio {config.ratio}, step {config.step}, max {config.maximum})",
            )
            # One more update with the same backlog: the count must hold, not overshoot.
            time.sleep(update + 2)
            peak = max((pods for _, pods in replay(watch)), default=0)
            first_pod = min((e.at for e in watch.events if e.kind == "ADDED" and e.at >= visible), default=None)
            growth = bursts(watch, visible)
            released = backlog.release()
        gone = wait_scaled_down(watch, config)
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


def busy_scenario(config: AutoscalerConfig) -> tuple[int, int]:
    """(busy jobs, held backlog): enough pods that a shrink must choose among idle and busy ones."""
    busy = min(BUSY_JOBS, config.maximum - 1)
    if busy < 1:
        incapable(f"with -max={config.maximum} the autoscaler never shrinks while work is left: nothing to verify")
    wanted = busy + min(3, config.maximum - busy)  # a few idle pods beside the busy ones
    for held in range(1, MAX_BACKLOG - busy + 1):
        if config.settle(held + busy, 0) >= wanted:
            return busy, held
    incapable(
        f"with -ratio={config.ratio} more than {MAX_BACKLOG} queued jobs would be needed for {wanted} pods; "
        "the check's load is bounded"
    )


@pytest.mark.prerequisite("AS-SCALE-UP-DOWN")
@pytest.mark.requirement("AS-SHRINK-KEEPS-BUSY")
@pytest.mark.usefixtures("pgqueue_backlog")
def test_shrinking_spares_the_busy_pods(
    deployed_stack: Stack,
    configured_autoscaler: AutoscalerConfig,
    deployed_server: ServerConfig,
    database: Database,
    geocube: GeocubeClient,
    shared_volume: PodVolumeStorage,
    evidence: Any,
) -> None:
    config = configured_autoscaler
    assert config.cost_path, (
        "the autoscaler runs without -pod.cost.path: every pod costs 0 to it, so a shrink deletes consolidaters "
        "in the middle of a job as readily as idle ones. Fix: -pod.cost.path=/termination_cost -pod.cost.port=9000"
    )
    busy_jobs, held = busy_scenario(config)
    pods_up = config.settle(held + busy_jobs, 0)
    update, selector = config.update_seconds, f"{AUTOSCALED_LABEL}={config.rc}"
    suffix = secrets.token_hex(3)
    # Indexing opens each input, so it is a real GeoTIFF until then, and a blocking pipe from then on.
    inputs = [put_input(shared_volume, deployed_server, f"blocking-{suffix}-{i}") for i in range(busy_jobs)]
    prepared = [prepare_input(geocube, uri, f"{suffix}{i}") for i, uri in enumerate(inputs)]
    geotiff = write_geotiff(input_raster())
    costs = CostReader(deployed_stack.kube, deployed_stack.namespace, config)
    evidence.add("cost endpoint", config.cost_url)
    evidence.add("held backlog + busy jobs", [held, busy_jobs])
    with PodWatch(deployed_stack.kube, deployed_stack.namespace, selector) as watch:
        wait_idle(watch, config)
        blocking = BlockingInputs(shared_volume, inputs, geotiff)
        with blocking, HeldBacklog(deployed_stack, database, config.queue, held) as backlog:
            start = backlog.make_due()
            jobs = [geocube.start_consolidation(each) for each in prepared]
            snapshot = _wait_busy(watch, costs, busy_jobs, pods_up, timeout=PGQ_IDLE_POLL + update * 4 + 60)
            busy = {pod for pod, cost in snapshot.items() if cost > 0}
            expected = config.settle(len(busy), len(snapshot))
            released = backlog.release()  # only the busy jobs remain queued
            shrunk = watch.wait_until(
                lambda w: len(w.live()) <= expected,
                timeout=update * (math.ceil(len(snapshot) / config.step) + 3) + 60,
                description=f"the autoscaler to shrink from {len(snapshot)} to {expected} pods with {len(busy)} "
                f"busy job(s) left in queue {config.queue!r}",
            )
            time.sleep(update + 2)  # one more update with the same backlog: nothing else may go
            survivors = watch.live()
            blocking.release()  # the busy jobs finish; the backlog drops to zero
        watch.wait_until(
            lambda w: len(w.live()) <= config.minimum,
            timeout=2 * update + 90,
            description=f"the autoscaler to delete its pods ({selector}) once the busy jobs ended",
        )
        points = timeline(watch, start, [(start, held + busy_jobs), (released, len(busy))])
    gone = sorted(set(snapshot) - survivors)
    evidence.timeline("consolidater pods (shrink with busy pods)", points)
    evidence.add("costs before the shrink (ms)", snapshot)
    evidence.add("deleted by the shrink", gone)
    evidence.add("time to shrink (s)", round(shrunk - released, 2))
    evidence.add("jobs", jobs)
    _assert_spared(snapshot, survivors, expected, config)


def _assert_spared(costs: dict[str, int], survivors: set[str], expected: int, config: AutoscalerConfig) -> None:
    """The shrink deleted the cheapest pods (by the costs seen just before it) and kept ``expected``."""
    __tracebackhide__ = True
    busy = {pod for pod, cost in costs.items() if cost > 0}
    gone = set(costs) - survivors
    killed = sorted(gone & busy)
    assert not killed, (
        f"the autoscaler deleted busy consolidater(s) {killed} (costs { {p: costs[p] for p in killed} } ms, in the "
        f"middle of a job) while idle pod(s) {sorted(survivors - busy) or 'none'} survived: a shrink must delete "
        "the lowest /termination_cost first"
    )
    cheapest_kept = min((costs[p] for p in survivors if p in costs), default=math.inf)
    dearest_gone = max((costs[p] for p in gone), default=-1)
    assert dearest_gone <= cheapest_kept, (
        f"the shrink kept a pod of cost {cheapest_kept} ms but deleted one of {dearest_gone} ms: costs {costs}"
    )
    assert len(survivors) == expected, (
        f"{len(survivors)} pods survived the shrink, expected {expected} for {len(busy)} queued job(s) "
        f"(ratio {config.ratio}, minratio {config.minratio}, step {config.step}, min {config.minimum})"
    )


def _wait_busy(watch: PodWatch, costs: CostReader, busy_jobs: int, pods: int, *, timeout: float) -> dict[str, int]:
    """Until ``pods`` pods answer a cost and ``busy_jobs`` of them are in a job; returns every pod's cost.

    Costs are polled (once a second): a pod's cost is an HTTP answer, with no event to watch.
    """
    deadline = time.monotonic() + timeout
    seen: dict[str, int] = {}
    while time.monotonic() < deadline:
        watch.raise_if_broken(f"{busy_jobs} busy consolidaters")
        live = watch.live()
        seen = costs.read(live)
        if len(seen) >= pods and len(live) == len(seen) and sum(1 for c in seen.values() if c > 0) >= busy_jobs:
            return seen
        time.sleep(1.0)
    raise AssertionError(
        f"within {timeout:g} s, {busy_jobs} consolidater(s) were never busy in a job among {pods} pods; last costs "
        f"(ms) {seen}, pods {sorted(watch.live())}. A consolidater takes queued work within {PGQ_IDLE_POLL:g} s "
        "of being idle; check the consolidaters' logs for the blocking inputs"
    )
