"""Whether the deployed autoscaler can work for this stack, judged from what is readable without changing it.

Its flags against qbas's rules and against the server's (the queue it measures, the database or project it
reads the backlog from, the namespace it manages), its ReplicationController, and what it logged over its
last few updates. Read-only: the live-stack variant of the autoscaling area, and the cross-check the
scaling checks rely on before they wait for pods.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from fixtures.cluster_client import api_message
from fixtures.deployed import AutoscalerConfig, ServerConfig
from fixtures.stack import Stack
from fixtures.system_evidence import error_text, stamped

# Severities of upstream's JSON log lines that mean an update went wrong.
# Recent updates whose log is read: errors older than this may have been fixed since.
UPDATES_READ = 3


def flag_problems(config: AutoscalerConfig, server: ServerConfig, namespace: str) -> list[str]:
    """What in the autoscaler's flags keeps it from scaling this stack's consolidaters, each with its fix."""
    problems = [
        f"the autoscaler rejects -{r} and never scales. Fix the flag in its Deployment" for r in config.rejected()
    ]
    if config.queue != server.consolidations_queue:
        problems.append(
            f"the autoscaler measures the backlog of queue {config.queue!r}, but the server publishes consolidation "
            f"orders to {server.consolidations_queue!r}: it would never scale for real jobs. Fix: "
            f"-queue={server.consolidations_queue}"
        )
    if config.namespace != namespace:
        problems.append(
            f"the autoscaler manages pods in namespace {config.namespace!r} (-ns), not in {namespace!r} where its "
            f"ReplicationController {config.rc!r} and the server are. Fix: -ns=$(POD_NAMESPACE) with POD_NAMESPACE "
            "from the downward API (metadata.namespace)"
        )
    if server.messaging == "pgqueue" and not config.pgq_connection:
        problems.append(
            "the server queues orders in PostgreSQL (pgqueue) but the autoscaler has no -pgq-connection: it reads "
            "the backlog from Pub/Sub, where nothing is queued. Fix: -pgq-connection=<the server's -pgqConnection>"
        )
    elif server.messaging == "pgqueue" and config.pgq_connection != server.pgq_connection:
        problems.append(
            "the autoscaler's -pgq-connection differs from the server's -pgqConnection: it counts the backlog of "
            "another queue table. Fix: give both the same connection string (e.g. from one Secret)"
        )
    if server.messaging == "pubsub" and config.ps_project and config.ps_project != server.pubsub_project:
        problems.append(
            f"the autoscaler reads the backlog of Pub/Sub project {config.ps_project!r}, the server publishes in "
            f"{server.pubsub_project!r}. Fix: -ps-project={server.pubsub_project}"
        )
    return problems


def require_pgqueue_backlog(server: ServerConfig) -> None:
    """End the check as INCOMPLETE where the environment cannot show a backlog to the autoscaler."""
    from reports.plugin import incapable

    if server.messaging != "pgqueue":
        incapable(
            "with Pub/Sub messaging the autoscaler reads the backlog from Cloud Monitoring "
            "(num_undelivered_messages), which the Pub/Sub emulator does not provide: scaling cannot be observed. "
            "Run with --messaging pgqueue (or against real Pub/Sub) to verify autoscaling."
        )


def usable_autoscaler(stack: Stack, config: AutoscalerConfig, server: ServerConfig) -> AutoscalerConfig:
    """``config`` if its flags can work for this stack; else the check fails at once, naming why."""
    problems = flag_problems(config, server, stack.namespace)
    problems += filter(None, [controller_problem(stack, config)])
    assert not problems, f"{config.workload}: " + "\n".join(problems)
    return config


def controller_problem(stack: Stack, config: AutoscalerConfig) -> str | None:
    """The ReplicationController whose template the autoscaler copies, if it cannot be read."""
    try:
        stack.kube.core.read_namespaced_replication_controller(config.rc, config.namespace, _request_timeout=15)
    except ApiException as err:
        return (
            f"the autoscaler copies its workers from ReplicationController {config.namespace}/{config.rc} (-rc, -ns), "
            f"which cannot be read: {err.status} {api_message(err)}. Fix: -rc=<the consolidater RC's name>"
        )
    return None


def recent_errors(stack: Stack, config: AutoscalerConfig, *, limit: int = 5) -> list[str]:
    """Error lines the autoscaler logged over its last few updates (its own account of what goes wrong)."""
    since = max(30, int(config.update_seconds * UPDATES_READ))
    errors: list[str] = []
    for pod, log in _autoscaler_logs(stack, config, since_seconds=since, timestamps=False):
        errors += [f"{pod}: {line}" for line in log.splitlines() if error_text(line)]
    return errors[-limit:]


def failing_every_update(stack: Stack, config: AutoscalerConfig, since: datetime, *, updates: int = 3) -> str | None:
    """Why waiting for the autoscaler is pointless: an error on each of its last ``updates`` updates since ``since``.

    qbas logs "failed autoscale" on every update that fails and nothing on one that has nothing to do, so
    errors as its last lines mean it has tried and failed that many times in a row (None otherwise).
    """
    seconds = int((datetime.now(UTC) - since).total_seconds()) + 2
    for pod, log in _autoscaler_logs(stack, config, since_seconds=seconds, timestamps=True):
        recent = [text for at, text in filter(None, map(stamped, log.splitlines())) if at >= since][-updates:]
        errors = [error_text(text) for text in recent]
        if len(recent) == updates and all(errors):
            return (
                f"the autoscaler (pod {pod}) failed each of its last {updates} updates "
                f"(every {config.update_seconds:g} s), saying: {errors[-1]}"
            )
    return None


def updates_since(stack: Stack, config: AutoscalerConfig, since: datetime) -> list[dict[str, Any]]:
    """The autoscaler's own account of each update since ``since`` that acted or failed, oldest first:
    ``{"at", "backlog", "instances", "delta", "error"}`` from its "autoscaled" and "failed autoscale" lines
    (an update with nothing to do logs nothing)."""
    seconds = int((datetime.now(UTC) - since).total_seconds()) + 2
    updates: list[dict[str, Any]] = []
    for _pod, log in _autoscaler_logs(stack, config, since_seconds=seconds, timestamps=True):
        for at, text in filter(None, map(stamped, log.splitlines())):
            try:
                record = json.loads(text)
            except ValueError:
                continue
            qbas = record.get("qbas") if isinstance(record, dict) else None
            if at >= since and isinstance(qbas, dict):
                updates.append({"at": at, **qbas, "error": record.get("error")})
    return sorted(updates, key=lambda update: update["at"])


def _autoscaler_logs(
    stack: Stack, config: AutoscalerConfig, *, since_seconds: int, timestamps: bool
) -> Iterator[tuple[str, str]]:
    """(pod, log since ``since_seconds`` ago) of each of the autoscaler's pods that is running."""
    name = config.workload.split("/", 1)[1]
    deployment = stack.kube.apps.read_namespaced_deployment(name, stack.namespace, _request_timeout=15)
    container = deployment.spec.template.spec.containers[0].name
    selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
    pods = stack.kube.core.list_namespaced_pod(stack.namespace, label_selector=selector, _request_timeout=15).items
    for pod in pods:
        try:
            text = stack.kube.core.read_namespaced_pod_log(
                pod.metadata.name,
                stack.namespace,
                container=container,
                since_seconds=since_seconds,
                timestamps=timestamps,
                _request_timeout=15,
            )
        except ApiException:
            continue  # not running yet: nothing logged, nothing to judge
        yield pod.metadata.name, str(text)
