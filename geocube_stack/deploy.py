"""A minimal deploy helper for the stack's own self-tests and benchmark (the suites use ``fixtures/``).

Renders one profile pair with :mod:`geocube_stack.render`, applies it server-side into a namespace
of its own, waits until every workload is ready (Deployments available, RC replicas ready, Jobs
complete) and records when each became ready. Observation failures are "no observation", never
"not ready"; known fatal pod states (image missing, bad config) fail at once with the pod's story.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from fixtures.classify import transient
from geocube_stack.errors import DeployError
from geocube_stack.render import KIND_ORDER, render_profile

FIELD_MANAGER = "geocube-stack"
MANAGED_BY = {"app.kubernetes.io/managed-by": "geocube-acceptance", "geocube-acceptance/owner": "geocube-stack"}
# Waiting reasons that never resolve by themselves.
FATAL_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImageNeverPull",
    }
)
Progress = Callable[[str], None]


class Kubectl(Protocol):
    """What the helper needs from a cluster: ``EmbeddedCluster`` satisfies it."""

    @property
    def kubeconfig(self) -> Path: ...

    def kubectl(self, *args: str, input_text: str | None = None, timeout: float = 60) -> str: ...


@dataclass
class Deployment:
    """One deployed stack: where, which profiles, with which parameters, and its timings."""

    cluster: Kubectl
    namespace: str
    messaging: str
    storage: str
    params: dict[str, str]
    applied_at: float = 0.0  # time.monotonic() of the first apply
    ready_after: dict[str, float] = field(default_factory=dict)  # workload → seconds after first apply

    @property
    def seconds_to_ready(self) -> float:
        return max(self.ready_after.values(), default=0.0)

    def kubectl(self, *args: str, input_text: str | None = None, timeout: float = 60) -> str:
        return self.cluster.kubectl("-n", self.namespace, *args, input_text=input_text, timeout=timeout)


def new_namespace_name(base: str = "geocube-stack") -> str:
    """``<base>-<random>``: unique, chosen here (no generateName)."""
    return f"{base}-{secrets.token_hex(4)}"


def create_namespace(cluster: Kubectl, name: str, labels: Mapping[str, str] | None = None) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**MANAGED_BY, **(labels or {})}},
    }
    cluster.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", input_text=json.dumps(body)
    )


def delete_namespace(cluster: Kubectl, name: str, *, wait: bool = True, timeout: float = 180) -> None:
    """Delete ``name`` (NotFound is success); with ``wait``, until it is gone."""
    cluster.kubectl(
        "delete",
        "namespace",
        name,
        "--ignore-not-found",
        f"--wait={'true' if wait else 'false'}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 30,
    )


def deploy(cluster: Kubectl, namespace: str, messaging: str, storage: str, params: Mapping[str, str]) -> Deployment:
    """Render and apply the stack (server-side apply, kind order) into an existing namespace."""
    rendered = render_profile(messaging, storage, params)
    deployment = Deployment(cluster, namespace, messaging, storage, dict(params))
    deployment.applied_at = time.monotonic()
    documents = "\n---\n".join(json.dumps(o) for o in rendered.objects)
    try:
        deployment.kubectl(
            "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", input_text=documents, timeout=120
        )
    except Exception as exc:
        raise DeployError(f"applying the {messaging}/{storage} stack into namespace {namespace} failed: {exc}") from exc
    return deployment


def wait_ready(deployment: Deployment, *, timeout: float = 600, progress: Progress | None = None) -> dict[str, float]:
    """Wait until every workload is ready; returns seconds-after-apply per workload."""
    say = progress or (lambda message: None)
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    observed = False
    while True:
        try:
            items = _get(deployment, "deployments,replicationcontrollers,jobs,pods")
            observed = True
        except Exception as exc:  # no observation this round; try again
            last["(observation)"] = f"kubectl get failed: {exc}"
            items = None
        if items is not None:
            last = {}
            pods = [i for i in items if i["kind"] == "Pod"]
            _fail_on_fatal_pods(deployment, pods)
            for item in items:
                if item["kind"] == "Pod":
                    continue
                key = f"{item['kind']}/{item['metadata']['name']}"
                ready, state = _workload_ready(item)
                if ready:
                    if key not in deployment.ready_after:
                        deployment.ready_after[key] = time.monotonic() - deployment.applied_at
                        say(f"{key} ready after {deployment.ready_after[key]:.1f} s")
                else:
                    last[key] = state
            if not last and deployment.ready_after:
                return deployment.ready_after
        if time.monotonic() > deadline:
            waiting = "\n".join(f"  {k}: {v}" for k, v in sorted(last.items())) or "  (nothing observed)"
            raise DeployError(
                f"the {deployment.messaging}/{deployment.storage} stack in namespace {deployment.namespace} was not "
                f"ready within {timeout:.0f} s{'' if observed else ' (the cluster never answered)'}. Not ready:\n"
                f"{waiting}\nready so far: {sorted(deployment.ready_after)}\n{diagnostics(deployment)}"
            )
        time.sleep(1)


def _get(deployment: Deployment, kinds: str) -> list[dict[str, Any]]:
    doc = json.loads(deployment.kubectl("get", kinds, "-o", "json", timeout=30))
    items: list[dict[str, Any]] = doc.get("items", [])
    return items


def _workload_ready(item: Mapping[str, Any]) -> tuple[bool, str]:
    kind, spec, status = item["kind"], item.get("spec", {}), item.get("status", {})
    if kind == "Job":
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Failed" and condition.get("status") == "True":
                return False, f"FAILED: {condition.get('reason')}: {condition.get('message')}"
        return bool(status.get("succeeded")), f"succeeded={status.get('succeeded', 0)} failed={status.get('failed', 0)}"
    wanted = int(spec.get("replicas", 1))
    if kind == "Deployment":
        generation_seen = status.get("observedGeneration", 0) >= item["metadata"].get("generation", 1)
        available = int(status.get("availableReplicas", 0))
        updated = int(status.get("updatedReplicas", 0))
        ready = generation_seen and available >= wanted and updated >= wanted
        return ready, f"available {available}/{wanted}, updated {updated}/{wanted}"
    ready_replicas = int(status.get("readyReplicas", 0))
    return ready_replicas >= wanted, f"ready {ready_replicas}/{wanted}"


def _fail_on_fatal_pods(deployment: Deployment, pods: list[dict[str, Any]]) -> None:
    for pod in pods:
        for container in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING and not transient(waiting):
                raise DeployError(
                    f"pod {pod['metadata']['name']} container {container['name']} cannot start: "
                    f"{waiting.get('reason')}: {waiting.get('message')}\n{diagnostics(deployment)}"
                )


def diagnostics(deployment: Deployment, *, log_lines: int = 40) -> str:
    """Objects, events and pod logs (previous containers too), for failure messages."""
    parts: list[str] = []

    def add(title: str, *args: str) -> None:
        try:
            parts.append(f"--- {title}\n{deployment.kubectl(*args, timeout=30).rstrip()}")
        except Exception as exc:
            parts.append(f"--- {title}: not observable ({exc})")

    add("objects", "get", "all", "-o", "wide")
    add("events", "get", "events", "--sort-by=.lastTimestamp")
    try:
        pods = _get(deployment, "pods")
    except Exception:
        pods = []
    for pod in pods:
        name = pod["metadata"]["name"]
        for container in pod.get("status", {}).get("containerStatuses") or []:
            add(f"log {name}/{container['name']}", "logs", name, "-c", container["name"], f"--tail={log_lines}")
            if container.get("restartCount", 0):
                add(
                    f"previous log {name}/{container['name']}",
                    "logs",
                    name,
                    "-c",
                    container["name"],
                    "--previous",
                    f"--tail={log_lines}",
                )
    return "\n".join(parts)


def pod_logs(deployment: Deployment, selector: str, *, tail: int = 200) -> str:
    """Logs of every pod matching ``selector`` (all containers, prefixed with the pod name)."""
    return deployment.kubectl(
        "logs", "-l", selector, "--all-containers", "--prefix", f"--tail={tail}", "--max-log-requests=50", timeout=60
    )


@contextlib.contextmanager
def port_forward(deployment: Deployment, target: str, remote_port: int, *, timeout: float = 30) -> Iterator[int]:
    """``kubectl port-forward <target> :<remote_port>``; yields the local port, always stops the process."""
    from localcluster.gobuild import ensure_binaries

    kubectl = str(ensure_binaries().path("kubectl"))
    argv = [
        kubectl,
        f"--kubeconfig={deployment.cluster.kubeconfig}",
        "-n",
        deployment.namespace,
        "port-forward",
        "--address=127.0.0.1",
        target,
        f":{remote_port}",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if match:
                yield int(match.group(1))
                return
            if process.poll() is not None:
                break
        stderr = process.stderr.read() if process.stderr and process.poll() is not None else ""
        raise DeployError(
            f"`kubectl port-forward {target} :{remote_port}` in {deployment.namespace} did not "
            f"start within {timeout:.0f} s; last output: {line.strip()!r} {stderr.strip()}"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def render_yaml(messaging: str, storage: str, params: Mapping[str, str]) -> str:
    """The rendered stack as one multi-document YAML (for inspection)."""
    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in render_profile(messaging, storage, params).objects)


__all__ = [
    "KIND_ORDER",
    "Deployment",
    "create_namespace",
    "delete_namespace",
    "deploy",
    "diagnostics",
    "new_namespace_name",
    "pod_logs",
    "port_forward",
    "render_yaml",
    "wait_ready",
]
