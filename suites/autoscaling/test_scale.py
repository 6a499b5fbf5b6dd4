"""The install guide's autoscaler at its own scale: step 16 up to max 256, with the workers on simulated nodes.

Only the scale selection runs these (``geocube-acceptance run suites/autoscaling -m scale``): its stack is
deployed with the guide's autoscaler values (``-update`` alone shortened, and recorded) and the consolidater
template placed on kwok nodes, where pods become Running without containers. The held backlog (see
``suites.autoscaling.backlog``) is larger than ``-max``, so the clamp at max is observed; its size is read
concurrently, as the autoscaler counts it, while the watch follows hundreds of pods.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from fixtures.access import Database
from fixtures.deployed import AUTOSCALED_LABEL, AutoscalerConfig, ServerConfig
from fixtures.embedded import SCALE_FAKE_NODES
from fixtures.errors import WaitAbandoned
from fixtures.journal import RestoreNodeSelector
from fixtures.podwatch import PodWatch
from fixtures.stack import Stack
from suites.autoscaling.backlog import HeldBacklog, sample_backlog
from suites.autoscaling.configuration import (
    failing_every_update,
    recent_errors,
    require_pgqueue_backlog,
    updates_since,
    usable_autoscaler,
)
from suites.autoscaling.observed import (
    bursts,
    replay,
    scale_up_timeout,
    timeline,
    wait_burst_end,
    wait_idle,
    wait_scaled_down,
    wait_scaled_up,
)

pytestmark = [pytest.mark.autoscaling, pytest.mark.slow, pytest.mark.scale]

# The install guide's autoscaler (-ratio=1 -minratio=1 -step=16 -max=256 -min=0): the requirement is pinned to
# these, whatever the deployment says; only -update may differ (the guide's 30 s would make the run 10 minutes).
GUIDE_FLAGS: Mapping[str, float] = {"ratio": 1.0, "minratio": 1.0, "step": 16, "maximum": 256, "minimum": 0}
GUIDE_UPDATE = 30.0
# Above -max, so the target is max and the clamp is observable; bounded (one row and one pod each).
SCALE_BACKLOG = 300
# Pins the worker template to one node (a pool too small for the target) for AS-SCALE-PENDING.
HOSTNAME_LABEL = "kubernetes.io/hostname"


def guide_mismatches(config: AutoscalerConfig) -> list[str]:
    """``-step=3 (the guide: 16)`` for every flag of the deployed autoscaler that is not the guide's."""
    flags = {"ratio": "ratio", "minratio": "minratio", "step": "step", "maximum": "max", "minimum": "min"}
    return [
        f"-{flag}={getattr(config, field):g} (the guide: {GUIDE_FLAGS[field]:g})"
        for field, flag in flags.items()
        if getattr(config, field) != GUIDE_FLAGS[field]
    ]


def tolerated(taint: Mapping[str, Any], tolerations: list[Mapping[str, Any]]) -> bool:
    """Whether one of ``tolerations`` tolerates ``taint`` (the scheduler's rule, for NoSchedule/NoExecute)."""
    if taint.get("effect") == "PreferNoSchedule":
        return True
    return any(_tolerates(toleration, taint) for toleration in tolerations)


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration.get("key") == taint.get("key")
    return bool(toleration.get("key") == taint.get("key") and toleration.get("value") == taint.get("value"))


def worker_pool(stack: Stack, config: AutoscalerConfig) -> dict[str, int]:
    """Node -> pods it can still take, for the nodes the worker template may land on (selector and taints)."""
    template = stack.kube.core.read_namespaced_replication_controller(config.rc, stack.namespace).spec.template.spec
    selector = dict(template.node_selector or {})
    tolerations = [t.to_dict() for t in template.tolerations or []]
    bound: dict[str, int] = {}
    for pod in stack.kube.core.list_pod_for_all_namespaces(
        field_selector="spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
    ).items:
        bound[pod.spec.node_name] = bound.get(pod.spec.node_name, 0) + 1
    pool: dict[str, int] = {}
    for node in stack.kube.core.list_node().items:
        labels, taints = node.metadata.labels or {}, [t.to_dict() for t in node.spec.taints or []]
        if node.spec.unschedulable or not selector.items() <= labels.items():
            continue
        if not all(tolerated(taint, tolerations) for taint in taints):
            continue
        allocatable = int(node.status.allocatable.get("pods", "0"))
        pool[node.metadata.name] = max(0, allocatable - bound.get(node.metadata.name, 0))
    return pool


def pending_reasons(stack: Stack, names: list[str]) -> dict[str, str]:
    """Pod -> the scheduler's reason it is Pending (its PodScheduled condition), for the pods still there."""
    reasons: dict[str, str] = {}
    for name in names:
        try:
            pod = stack.kube.core.read_namespaced_pod(name, stack.namespace)
        except ApiException:
            continue
        conditions = [c for c in pod.status.conditions or [] if c.type == "PodScheduled" and c.status == "False"]
        reasons[name] = f"{conditions[0].reason}: {conditions[0].message}" if conditions else "not scheduled yet"
    return reasons


@pytest.fixture
def guide_autoscaler(
    deployed_stack: Stack, deployed_autoscaler: AutoscalerConfig, deployed_server: ServerConfig
) -> AutoscalerConfig:
    """The deployed autoscaler, usable for this stack and with the guide's values, before anything waits on it."""
    require_pgqueue_backlog(deployed_server)
    configured_autoscaler = usable_autoscaler(deployed_stack, deployed_autoscaler, deployed_server)
    mismatches = guide_mismatches(configured_autoscaler)
    assert not mismatches, (
        f"{configured_autoscaler.workload} runs {', '.join(mismatches)}: the scale checks prove the install "
        "guide's values (-ratio=1 -minratio=1 -step=16 -max=256 -min=0). Fix: deploy the autoscaler with them "
        "(only -update may differ), e.g. --set AUTOSCALER_STEP=16 --set AUTOSCALER_MAX=256."
    )
    return configured_autoscaler


@pytest.mark.asyncio
@pytest.mark.requirement("AS-SCALE-AT-MAX")
async def test_guide_values_reach_max_by_steps_and_back(
    deployed_stack: Stack, guide_autoscaler: AutoscalerConfig, database: Database, evidence: Any
) -> None:
    config, stack = guide_autoscaler, deployed_stack
    top, step, update = config.maximum, config.step, config.update_seconds
    pool = worker_pool(stack, config)
    free, nodes = sum(pool.values()), [f"{node}: {room}" for node, room in sorted(pool.items())]
    shortened = f"{update:g} s (the guide's: {GUIDE_UPDATE:g} s)" if update != GUIDE_UPDATE else f"{update:g} s"
    evidence.add(
        "autoscaler flags",
        {"ratio": config.ratio, "minratio": config.minratio, "step": step, "max": top, "min": config.minimum,
         "update": shortened},
    )  # fmt: skip
    evidence.add("worker pool (free pod slots by node)", nodes)
    assert free >= top, (
        f"the nodes the worker template may land on can take {free} more pods ({'; '.join(nodes) or 'no node'}), "
        f"fewer than -max={top}: the autoscaler would stop growing at the first Pending pod. Fix: on the embedded "
        f"default, geocube-acceptance cluster up --fake-nodes {SCALE_FAKE_NODES}; on your cluster, a node pool (or "
        "kwok nodes) the consolidater template's nodeSelector and tolerations reach, with room for -max pods."
    )
    selector = f"{AUTOSCALED_LABEL}={config.rc}"
    steps = -(-top // step)
    with PodWatch(stack.kube, stack.namespace, selector) as watch:
        wait_idle(watch, config)
        with HeldBacklog(stack, database, config.queue, SCALE_BACKLOG) as backlog:
            async with await database.connect_async(autocommit=True) as conn:
                stop = asyncio.Event()
                visible = backlog.make_due()
                since = datetime.now(UTC)
                sampler = asyncio.create_task(sample_backlog(conn, config.queue, stop))
                try:
                    reached = await asyncio.to_thread(
                        wait_scaled_up,
                        stack,
                        watch,
                        config,
                        top,
                        since=since,
                        why=f"for a backlog of {SCALE_BACKLOG} (step {step} every {update:g} s: {steps} updates)",
                    )
                    # Two more updates with the same backlog: the count must hold at max, not overshoot.
                    await asyncio.sleep(2 * update + 1)
                    released = await asyncio.to_thread(backlog.release)
                    gone = await asyncio.to_thread(wait_scaled_down, watch, config)
                finally:
                    stop.set()
                    backlog_points = await sampler
        gone_all = await asyncio.to_thread(
            watch.wait_until,
            lambda w: not w.phases(),
            timeout=60,
            description=f"the {top} deleted pods ({selector}) to be gone from the API",
        )
        events = list(watch.events)
    created = [e for e in events if e.kind == "ADDED" and e.at >= visible]
    deleted = {e.pod for e in events if e.kind == "DELETED"}
    peak = max((pods for event, pods in replay(watch) if event.at >= visible), default=0)
    # Per update from the autoscaler's own log: its updates run back to back at this scale (client-go sends
    # 5 requests/s, so 16 creations outlast a short -update), and no gap in the watch separates them.
    updates = updates_since(stack, config, since)
    growth = [int(u.get("delta") or 0) for u in updates if int(u.get("delta") or 0) > 0 and not u.get("error")]
    lags = [e.lag for e in events if e.lag is not None and e.at >= visible]
    evidence.timeline("consolidater pods", timeline(watch, visible, [(at, size) for at, size in backlog_points]))
    evidence.add("peak pods", peak)
    evidence.add("pods created per update (the autoscaler's log)", growth)
    evidence.add("updates logged (backlog, instances, delta)", [_update_row(u) for u in updates])
    evidence.add("pods created / seen deleted", f"{len(created)} / {len(deleted)}")
    evidence.add("time to max (s)", round(reached - visible, 1))
    evidence.add("time to zero after release (s)", round(gone - released, 1))
    evidence.add("all gone from the API after release (s)", round(gone_all - released, 1))
    if lags:
        evidence.add(
            "watch delay (s; API timestamps have 1 s resolution: upper bounds)",
            {"median": round(statistics.median(lags), 3), "max": round(max(lags), 3), "events": len(lags)},
        )
    assert peak <= top, f"{peak} pods at once, above -max={top}"
    assert peak == top, f"the pods peaked at {peak}, not -max={top}, with a backlog of {SCALE_BACKLOG}"
    assert all(g <= step for g in growth), f"pods created per update {growth}: more than -step={step} at once"
    assert {e.pod for e in created} <= deleted, (
        f"{len({e.pod for e in created} - deleted)} pod(s) created were never seen deleted: "
        f"{sorted({e.pod for e in created} - deleted)[:10]}"
    )
    assert len(created) == len(deleted), f"{len(created)} pods seen created, {len(deleted)} seen deleted"
    assert sum(growth) == len(created), (
        f"the autoscaler logged {sum(growth)} pods created ({growth}), the watch saw {len(created)}"
    )


def _update_row(update: Mapping[str, Any]) -> str:
    at = update["at"].strftime("%H:%M:%S.%f")[:-3]
    row = f"{at} backlog {update.get('backlog')}, instances {update.get('instances')}, delta {update.get('delta')}"
    return row + (f" ({update['error']})" if update.get("error") else "")


@pytest.mark.requirement("AS-SCALE-PENDING")
def test_no_growth_while_a_worker_is_pending(
    deployed_stack: Stack, guide_autoscaler: AutoscalerConfig, database: Database, evidence: Any
) -> None:
    """A pool too small for the target: the worker template pinned to one node, a backlog beyond its room."""
    config, stack = guide_autoscaler, deployed_stack
    step, update = config.step, config.update_seconds
    pool = {node: room for node, room in worker_pool(stack, config).items() if room > 0}
    if not pool:
        pytest.fail("no node the worker template may land on has room for a pod; see AS-SCALE-AT-MAX", pytrace=False)
    node, room = min(pool.items(), key=lambda item: item[1])  # the smallest: the fewest updates to fill it
    size = min(room + 2 * step, config.maximum, SCALE_BACKLOG)
    if size <= room:
        pytest.fail(
            f"node {node} has room for {room} pods, -max={config.maximum}: no Pending pod can be made", pytrace=False
        )
    template = stack.kube.core.read_namespaced_replication_controller(config.rc, stack.namespace).spec.template.spec
    before = dict(template.node_selector or {})
    added = [] if HOSTNAME_LABEL in before else [HOSTNAME_LABEL]
    evidence.add("pool", f"worker template pinned to node {node} ({HOSTNAME_LABEL}), room for {room} pods")
    evidence.add("backlog", size)
    selector = f"{AUTOSCALED_LABEL}={config.rc}"
    with stack.changes(RestoreNodeSelector(config.rc, before, added)):
        pinned = {"spec": {"template": {"spec": {"nodeSelector": {**before, HOSTNAME_LABEL: node}}}}}
        stack.kube.core.patch_namespaced_replication_controller(config.rc, stack.namespace, pinned)
        with PodWatch(stack.kube, stack.namespace, selector) as watch:
            wait_idle(watch, config)
            with HeldBacklog(stack, database, config.queue, size) as backlog:
                backlog.make_due()
                since = datetime.now(UTC)
                try:
                    watch.wait_until(
                        lambda w: any(phase == "Pending" for phase in w.phases().values()) and len(w.live()) > room,
                        timeout=scale_up_timeout(config, room + 1),
                        description=f"a consolidater pod ({selector}) Pending once node {node}'s {room} slots are full",
                        give_up=lambda: failing_every_update(stack, config, since),
                    )
                except WaitAbandoned as err:
                    pytest.fail(str(err), pytrace=False)
                quiet_from = wait_burst_end(watch, config)  # the update that made the Pending pods ends
                at_pending = len(watch.live())
                time.sleep(3 * update + 1)  # three more updates with the backlog unchanged
                after = len(watch.live())
                pending = sorted(name for name, phase in watch.phases().items() if phase == "Pending")
                reasons = pending_reasons(stack, pending)
                said = recent_errors(stack, config)
                backlog.release()
            wait_scaled_down(watch, config)
            later = bursts(watch, quiet_from)
    evidence.add("pods once the update that made the first Pending pod ended", at_pending)
    evidence.add("pods three updates later", after)
    evidence.add("Pending pods and the scheduler's reason", reasons)
    evidence.add("the autoscaler's words", said or "nothing logged")
    assert pending, f"no pod was Pending after {room} filled node {node}: the pool was not too small"
    assert after <= at_pending and not later, (
        f"the autoscaler kept creating pods while {len(pending)} were Pending (pods {at_pending} -> {after}, bursts "
        f"{later}); it must not grow while a pod is Pending. Pending: {reasons}"
    )
