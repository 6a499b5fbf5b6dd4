"""The autoscaler's own account: errors over its last updates, and a wait that stops when every update fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from fixtures.deployed import AutoscalerConfig
from suites.autoscaling.configuration import failing_every_update, recent_errors

SINCE = datetime.now(UTC) - timedelta(seconds=30)
FORBIDDEN = (
    '{"severity":"error","message":"failed autoscale","error":"pods is forbidden: User \\"system:serviceaccount:ns:'
    'autoscaler-service-account\\" cannot create resource \\"pods\\" in API group \\"\\""}'
)


def stamp(seconds: float) -> str:
    return (SINCE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stack_with_log(log: str) -> Any:
    deployment = SimpleNamespace(
        spec=SimpleNamespace(
            template=SimpleNamespace(spec=SimpleNamespace(containers=[SimpleNamespace(name="autoscaler")])),
            selector=SimpleNamespace(match_labels={"app": "consolidater-autoscaler"}),
        )
    )
    pod = SimpleNamespace(metadata=SimpleNamespace(name="autoscaler-x"))

    def read_log(name: str, namespace: str, *, timestamps: bool, **_: Any) -> str:
        return log if timestamps else "\n".join(line.split(" ", 1)[1] for line in log.splitlines())

    kube = SimpleNamespace(
        apps=SimpleNamespace(read_namespaced_deployment=lambda name, ns, **kw: deployment),
        core=SimpleNamespace(
            list_namespaced_pod=lambda ns, **kw: SimpleNamespace(items=[pod]), read_namespaced_pod_log=read_log
        ),
    )
    return SimpleNamespace(kube=kube, namespace="ns")


CONFIG = AutoscalerConfig(
    workload="Deployment/consolidater-autoscaler", update_seconds=5, queue="consolidations", rc="consolidater",
    namespace="ns", ratio=1, minratio=1, step=3, maximum=8, minimum=0, service_account="autoscaler-service-account",
)  # fmt: skip


def test_errors_on_each_of_the_last_updates_stop_the_wait_naming_the_error() -> None:
    log = "\n".join(f"{stamp(s)} {FORBIDDEN}" for s in (5, 10, 15))
    reason = failing_every_update(stack_with_log(log), CONFIG, SINCE)
    assert reason is not None
    assert reason.startswith("the autoscaler (pod autoscaler-x) failed each of its last 3 updates (every 5 s), saying:")
    assert 'cannot create resource "pods"' in reason


def test_a_success_among_the_last_updates_or_too_few_updates_keep_the_wait() -> None:
    autoscaled = '{"severity":"info","message":"autoscaled","qbas":{"delta":3}}'
    recovering = "\n".join([f"{stamp(5)} {FORBIDDEN}", f"{stamp(10)} {FORBIDDEN}", f"{stamp(15)} {autoscaled}"])
    assert failing_every_update(stack_with_log(recovering), CONFIG, SINCE) is None
    two = "\n".join(f"{stamp(s)} {FORBIDDEN}" for s in (5, 10))
    assert failing_every_update(stack_with_log(two), CONFIG, SINCE) is None
    before = "\n".join(f"{stamp(s)} {FORBIDDEN}" for s in (-15, -10, -5))  # said before the wait began
    assert failing_every_update(stack_with_log(before), CONFIG, SINCE) is None


def test_recent_errors_are_the_error_lines_with_their_pod() -> None:
    log = "\n".join([f"{stamp(1)} {FORBIDDEN}", f"{stamp(2)} " + '{"severity":"info","message":"ok"}'])
    assert recent_errors(stack_with_log(log), CONFIG) == [f"autoscaler-x: {FORBIDDEN}"]
