"""Failure classification and readiness on literal status dicts, and the evidence a failure carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from fixtures.classify import (
    CRASHLOOP_RESTARTS,
    Failure,
    classify,
    classify_controller,
    classify_job,
    classify_pod,
    readiness,
    restarts,
)
from fixtures.waits import workload_failed
from reports.masking import Masker

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def pod(
    *statuses: dict[str, Any],
    init: tuple[dict[str, Any], ...] = (),
    phase: str = "Pending",
    restart_policy: str = "Always",
    conditions: tuple[dict[str, Any], ...] = (),
    **status: Any,
) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "apiserver-7d9f"},
        "spec": {"restartPolicy": restart_policy},
        "status": {
            "phase": phase,
            "containerStatuses": list(statuses),
            "initContainerStatuses": list(init),
            "conditions": list(conditions),
            **status,
        },
    }


def waiting(reason: str, message: str = "", name: str = "apiserver", restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "localhost/geocube-server:v1.0.3",
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
        **extra,
    }


def running(name: str = "apiserver", **extra: Any) -> dict[str, Any]:
    return {"name": name, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-15T11:59:00Z"}}, **extra}


# --------------------------------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "message", "expected"),
    [
        ("ImagePullBackOff", 'Back-off pulling image "x"', "image localhost/geocube-server:v1.0.3: Back-off pulling"),
        (
            "ErrImagePull",
            "rpc error: not found",
            "image localhost/geocube-server:v1.0.3: not found: rpc error: not found. Fix: push",
        ),
        (
            "ErrImagePull",
            "failed to authorize: 401 Unauthorized",
            "unauthorized: failed to authorize: 401 Unauthorized. Fix: give",
        ),
        (
            "ErrImagePull",
            "x509: certificate signed by unknown authority",
            "TLS: x509: certificate signed by unknown authority. Fix: the nodes'",
        ),
        ("ErrImageNeverPull", "", "imagePullPolicy is Never and the image is not present on the node"),
        ("InvalidImageName", "", "the image reference is malformed"),
        ("CreateContainerConfigError", 'secret "db" not found', 'secret "db" not found'),
        ("RunContainerError", "", "bad command or entrypoint"),
    ],
)
def test_waiting_reasons_that_never_resolve_alone(reason: str, message: str, expected: str) -> None:
    failure = classify_pod(pod(waiting(reason, message)), NOW)
    assert failure is not None
    assert failure.reason == reason
    assert failure.container == "apiserver"
    assert expected in failure.message
    assert failure.describe().startswith(f"Pod/apiserver-7d9f container apiserver: {reason}: ")


def test_a_slow_kubelet_cache_sync_is_not_a_failure() -> None:
    message = "failed to sync secret cache: timed out waiting for the condition"
    assert classify_pod(pod(waiting("CreateContainerConfigError", message)), NOW) is None


def test_crash_loop_is_tolerated_for_a_few_restarts_then_reported_with_previous_logs() -> None:
    last = {"lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}}
    assert classify_pod(pod(waiting("CrashLoopBackOff", restarts=CRASHLOOP_RESTARTS - 1, **last)), NOW) is None
    failure = classify_pod(pod(waiting("CrashLoopBackOff", "back-off 40s", restarts=CRASHLOOP_RESTARTS, **last)), NOW)
    assert failure == Failure(
        "CrashLoopBackOff",
        "Pod",
        "apiserver-7d9f",
        f"the container keeps exiting: last exit code 2 (Error), {CRASHLOOP_RESTARTS} restarts; back-off 40s",
        "apiserver",
        "previous",
    )


def test_oom_killed_wins_over_crash_loop() -> None:
    container = waiting(
        "CrashLoopBackOff", restarts=5, lastState={"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    )
    failure = classify_pod(pod(container), NOW)
    assert failure is not None
    assert (failure.reason, failure.logs) == ("OOMKilled", "previous")
    assert "resources.limits.memory" in failure.message


def test_init_container_failure_is_reported() -> None:
    failure = classify_pod(pod(init=(waiting("ErrImageNeverPull", name="wait-for-db"),)), NOW)
    assert failure is not None
    assert (failure.reason, failure.container) == ("ErrImageNeverPull", "wait-for-db")


def test_failed_container_without_restarts() -> None:
    terminated = {"name": "init-db", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    failure = classify_pod(pod(terminated, restart_policy="Never", phase="Failed"), NOW)
    assert failure is not None
    assert failure.reason == "ContainerFailed"
    assert failure.message == "exited with code 1 (Error) and restartPolicy is Never"
    assert failure.logs == "current"
    restarting = {"name": "x", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    assert classify_pod(pod(restarting, phase="Running"), NOW) is None  # Always: it will be restarted


def test_evicted_pod() -> None:
    failure = classify_pod(pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory."), NOW)
    assert failure is not None
    assert (failure.reason, failure.message) == ("Evicted", "The node was low on resource: memory.")


def unschedulable(since: datetime) -> dict[str, Any]:
    return {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu.",
        "lastTransitionTime": since.isoformat().replace("+00:00", "Z"),
    }


def test_unschedulable_after_a_grace_period_with_the_schedulers_message() -> None:
    assert classify_pod(pod(conditions=(unschedulable(NOW - timedelta(seconds=5)),)), NOW) is None
    failure = classify_pod(pod(conditions=(unschedulable(NOW - timedelta(seconds=30)),)), NOW)
    assert failure is not None
    assert failure.reason == "Unschedulable"
    assert failure.message == "the scheduler says: 0/1 nodes are available: 1 Insufficient cpu."


@pytest.mark.parametrize(
    "healthy",
    [
        pod(waiting("ContainerCreating")),
        pod(waiting("PodInitializing")),
        pod(running(), phase="Running"),
        pod(phase="Pending", conditions=({"type": "PodScheduled", "status": "True"},)),
        pod(phase="Succeeded"),
        {"kind": "Pod", "metadata": {"name": "bare"}},
    ],
    ids=["creating", "initializing", "running", "scheduled", "succeeded", "no-status"],
)
def test_healthy_or_progressing_pods_are_not_failures(healthy: dict[str, Any]) -> None:
    assert classify_pod(healthy, NOW) is None


# --------------------------------------------------------------------------------------------------
# Jobs and controllers
# --------------------------------------------------------------------------------------------------


def test_failed_job() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "db-init"},
        "status": {
            "failed": 4,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ],
        },
    }
    failure = classify_job(job)
    assert failure == Failure(
        "JobFailed",
        "Job",
        "db-init",
        "BackoffLimitExceeded: Job has reached the specified backoff limit",
        logs="current",
    )
    assert classify(job, NOW) == failure
    assert classify_job({"kind": "Job", "metadata": {"name": "j"}, "status": {"active": 1}}) is None


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        (
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": 'pods "x" is forbidden: error looking up service account ns/apiserver',
            },
            "ReplicaFailure",
        ),
        (
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out"},
            "ProgressDeadlineExceeded",
        ),
    ],
)
def test_controller_failures(condition: dict[str, Any], reason: str) -> None:
    deployment = {"kind": "Deployment", "metadata": {"name": "apiserver"}, "status": {"conditions": [condition]}}
    failure = classify_controller(deployment)
    assert failure is not None
    assert (failure.reason, failure.kind, failure.name) == (reason, "Deployment", "apiserver")


# --------------------------------------------------------------------------------------------------
# Readiness
# --------------------------------------------------------------------------------------------------


def rolled_out(observed_generation: int) -> dict[str, Any]:
    """A Deployment of generation 2 with its one replica updated and available, its controller having seen
    ``observed_generation``."""
    return {
        "kind": "Deployment",
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": observed_generation, "updatedReplicas": 1, "availableReplicas": 1},
    }


@pytest.mark.parametrize(
    ("obj", "ready", "text"),
    [
        (rolled_out(observed_generation=2), True, "1/1 availableReplicas"),
        # The controller has not observed generation 2 yet: its replica counts may be the previous spec's.
        (rolled_out(observed_generation=1), False, "1/1 availableReplicas"),
        (
            {"kind": "Deployment", "metadata": {"generation": 1}, "spec": {}, "status": {"observedGeneration": 1}},
            False,
            "0/1 availableReplicas",
        ),
        (
            {
                "kind": "ReplicationController",
                "metadata": {"generation": 1},
                "spec": {"replicas": 0},
                "status": {"observedGeneration": 1},
            },
            True,
            "0/0 readyReplicas",
        ),
        ({"kind": "StatefulSet", "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}, True, "1/1 readyReplicas"),
        (
            {
                "kind": "DaemonSet",
                "metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 1, "numberReady": 0},
            },
            False,
            "0/1 numberReady",
        ),
        (
            {"kind": "Job", "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}},
            True,
            "succeeded=1",
        ),
        (
            {"kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}},
            False,
            "phase=Running",
        ),
        ({"kind": "ConfigMap"}, True, "applied"),
    ],
)
def test_readiness(obj: dict[str, Any], ready: bool, text: str) -> None:
    assert readiness(obj) == (ready, text)


# --------------------------------------------------------------------------------------------------
# The error raised carries the last log lines, masked
# --------------------------------------------------------------------------------------------------


class FakeCore:
    def __init__(self) -> None:
        self.log_calls: list[dict[str, Any]] = []

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> str:
        self.log_calls.append({"name": name, "namespace": namespace, **kwargs})
        return "connecting to postgres://geocube:hunter22@db:5432/geocube\npanic: dial tcp: connection refused\n"

    def list_namespaced_pod(self, namespace: str, label_selector: str, _request_timeout: float) -> Any:
        meta = SimpleNamespace(name="db-init-x1", creation_timestamp=NOW)
        return SimpleNamespace(items=[SimpleNamespace(metadata=meta)])


def test_crash_loop_error_shows_the_previous_containers_last_lines_masked() -> None:
    core = FakeCore()
    failure = Failure("CrashLoopBackOff", "Pod", "apiserver-7d9f", "keeps exiting", "apiserver", "previous")
    error = workload_failed(SimpleNamespace(core=core), "ns1", failure, Masker(["hunter22"]))  # type: ignore[arg-type]
    text = str(error)
    assert text.startswith("Pod/apiserver-7d9f container apiserver: CrashLoopBackOff: keeps exiting\n")
    assert "--- last 30 log lines of pod apiserver-7d9f (previous container) ---" in text
    assert "panic: dial tcp: connection refused" in text
    assert "hunter22" not in text
    assert core.log_calls[0]["previous"] is True
    assert core.log_calls[0]["container"] == "apiserver"


def test_failed_job_error_shows_its_latest_pods_logs() -> None:
    core = FakeCore()
    error = workload_failed(
        SimpleNamespace(core=core), "ns1", Failure("JobFailed", "Job", "db-init", "x", logs="current"), Masker()
    )  # type: ignore[arg-type]
    assert "log lines of pod db-init-x1 (container)" in str(error)
    assert core.log_calls[0]["previous"] is False


def test_restarts_names_each_restarted_container_with_its_last_exit() -> None:
    pods = [
        {
            "metadata": {"name": "apiserver-1"},
            "status": {
                "containerStatuses": [
                    {
                        "name": "apiserver",
                        "restartCount": 3,
                        "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
                    },
                    {"name": "sidecar", "restartCount": 0},
                ]
            },
        },
        {"metadata": {"name": "postgresql-1"}, "status": {"containerStatuses": [{"name": "postgresql"}]}},
    ]
    assert restarts(pods) == {"apiserver-1/apiserver": "3 restart(s), last Error (exit 1)"}
    assert restarts([]) == {}
