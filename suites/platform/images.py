"""PLAT-IMAGES: every workload's images can be pulled with the credentials its pods name.

What is read is what the cluster runs, not what was rendered: each workload's pod template (the
consolidater ReplicationController's is the one the autoscaler makes workers of), the pull Secrets it
names plus its ServiceAccount's (admission adds those to every pod), and the pods' reports. Each
distinct image is asked of its registry with those credentials — a manifest request, nothing pulled —
and the digest each pod runs is recorded beside the registry's. A registry this machine cannot reach,
or whose certificate it does not trust, is not a failure when a pod of that image runs: the node pulled
it, which is what the check asks; the evidence says which of the two proved it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from fixtures.cluster_client import event_time
from fixtures.pull_secrets import (
    PullSecretError,
    RegistryAnswerError,
    auths_of_secret,
    credentials_for,
    image_host,
    manifest_digest,
    parse_image,
    pull_failure_cause,
    pull_fix,
)
from fixtures.stack import Stack
from localcluster.registry_client import Credentials, Failure

REQUEST_TIMEOUT = 15.0
_PULL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
_REACHABILITY = (Failure.UNKNOWN_REGISTRY, Failure.TLS)


@dataclass
class Use:
    """One image as the workloads use it: where, with which pull policy and which pull Secrets."""

    image: str
    containers: list[str] = field(default_factory=list)  # "Deployment/x container y"
    policies: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)


@dataclass
class Finding:
    """What PLAT-IMAGES learnt of one image: the registry's digest or refusal, and the pods' digests and errors."""

    use: Use
    registry_digest: str = ""
    registry_failure: Failure | None = None
    registry_said: str = ""
    pod_digests: dict[str, str] = field(default_factory=dict)  # pod/container → digest
    pull_errors: list[str] = field(default_factory=list)

    def problem(self) -> str | None:
        """Why the image cannot be pulled, naming the cause, the image and the fix; None: it can."""
        if self.pull_errors:
            return "; ".join(self.pull_errors)
        if self.registry_failure is None:
            return None
        if self.registry_failure in _REACHABILITY and self.pod_digests:
            return None  # this machine cannot ask, but the node pulled it
        host = image_host(self.use.image)
        return (
            f"{self.registry_said} (used by {', '.join(self.use.containers)}). "
            f"Fix: {pull_fix(self.registry_failure, host)}"
        )

    def row(self) -> dict[str, Any]:
        """The evidence of this image."""
        proved = (
            "registry"
            if self.registry_digest
            else ("node (registry not reachable from the runner)" if self.pod_digests else "not proved")
        )
        return {
            "image": self.use.image,
            "used by": sorted(self.use.containers),
            "pull policy": sorted(self.use.policies),
            "imagePullSecrets": sorted(self.use.secrets) or "none",
            "registry digest": self.registry_digest
            or f"{self.registry_failure.value if self.registry_failure else ''}",
            "pods run": dict(sorted(self.pod_digests.items())) or "no pod running",
            "pullable, proved by": proved,
        }


def image_uses(stack: Stack) -> dict[str, Use]:
    """Image → how the namespace's workloads use it (Deployments, ReplicationControllers, Jobs, StatefulSets)."""
    kube, namespace = stack.kube, stack.namespace
    accounts = {
        sa.metadata.name: [s.name for s in sa.image_pull_secrets or []]
        for sa in kube.core.list_namespaced_service_account(namespace, _request_timeout=REQUEST_TIMEOUT).items
    }
    workloads = [
        *(
            ("Deployment", d)
            for d in kube.apps.list_namespaced_deployment(namespace, _request_timeout=REQUEST_TIMEOUT).items
        ),
        *(
            ("StatefulSet", s)
            for s in kube.apps.list_namespaced_stateful_set(namespace, _request_timeout=REQUEST_TIMEOUT).items
        ),
        *(
            ("ReplicationController", r)
            for r in kube.core.list_namespaced_replication_controller(namespace, _request_timeout=REQUEST_TIMEOUT).items
        ),
        *(("Job", j) for j in kube.batch.list_namespaced_job(namespace, _request_timeout=REQUEST_TIMEOUT).items),
    ]
    uses: dict[str, Use] = {}
    for kind, workload in workloads:
        spec = workload.spec.template.spec
        secrets = {s.name for s in spec.image_pull_secrets or []}
        secrets |= set(accounts.get(spec.service_account_name or "default", []))
        for container in (spec.init_containers or []) + spec.containers:
            use = uses.setdefault(container.image, Use(container.image))
            use.containers.append(f"{kind}/{workload.metadata.name} container {container.name}")
            use.policies.add(container.image_pull_policy or "default")
            use.secrets |= secrets
    return uses


def read_auths(stack: Stack, names: Iterable[str]) -> tuple[dict[str, dict[str, Credentials]], list[str]]:
    """Pull Secret → its credentials by host; and the problems of Secrets that are missing or unusable."""
    auths: dict[str, dict[str, Credentials]] = {}
    problems = []
    for name in sorted(set(names)):
        try:
            secret = stack.kube.core.read_namespaced_secret(name, stack.namespace, _request_timeout=REQUEST_TIMEOUT)
            auths[name] = auths_of_secret(stack.kube.api.sanitize_for_serialization(secret))
        except ApiException as err:
            problems.append(
                f"pull Secret {name} cannot be read ({err.status} {err.reason}): "
                + (
                    "it does not exist in the namespace; pods naming it pull without credentials"
                    if err.status == 404
                    else ""
                )
            )
        except PullSecretError as err:
            problems.append(str(err))
    return auths, problems


def ask_registry(finding: Finding, auths: Mapping[str, Mapping[str, Credentials]], ca_file: Path | None) -> None:
    """The registry's digest for the image, asked with the first credentials its pull Secrets hold for the host."""
    try:
        image = parse_image(finding.use.image)
        credentials = next(
            (
                c
                for name in sorted(finding.use.secrets)
                if (c := credentials_for(image, auths.get(name, {}))) is not None
            ),
            None,
        )
        finding.registry_digest = manifest_digest(finding.use.image, credentials, ca_file=ca_file)
    except RegistryAnswerError as err:
        finding.registry_failure = err.failure
        said = str(err)
        if credentials is None and err.failure == Failure.UNAUTHORIZED:
            named = ", ".join(sorted(finding.use.secrets)) or "none"
            said = f"{said} — no pull Secret of the workload holds credentials for {image.host} (Secrets: {named})"
        finding.registry_said = said
    except PullSecretError as err:
        finding.registry_failure, finding.registry_said = Failure.OTHER, str(err)


def observe_pods(stack: Stack, findings: Mapping[str, Finding]) -> None:
    """Each pod's digest per image, and the causes of its pull errors (the kubelet's Failed events name them)."""
    kube, namespace = stack.kube, stack.namespace
    pods = kube.core.list_namespaced_pod(namespace, _request_timeout=REQUEST_TIMEOUT).items
    for pod in pods:
        statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
        for status in statuses:
            finding = findings.get(status.image) or findings.get(_spec_image(pod, status.name), None)
            if finding is None:
                continue  # a pod of no workload (a check's own)
            where = f"{pod.metadata.name}/{status.name}"
            if status.image_id:
                finding.pod_digests[where] = status.image_id.rpartition("@")[2] or status.image_id
            waiting = status.state.waiting if status.state else None
            if waiting is not None and waiting.reason in _PULL_WAITING:
                said = _pull_event(stack, pod.metadata.name) or waiting.message or waiting.reason
                cause = pull_failure_cause(said)
                host = image_host(finding.use.image)
                finding.pull_errors.append(
                    f"pod {where} cannot pull {finding.use.image}: {cause.value} ({said}). Fix: {pull_fix(cause, host)}"
                )


def _spec_image(pod: Any, container: str) -> str:
    """The image a container's spec names (a status may report it normalised, e.g. docker.io/library/…)."""
    for spec in (pod.spec.init_containers or []) + pod.spec.containers:
        if spec.name == container:
            return str(spec.image)
    return ""


def _pull_event(stack: Stack, pod: str) -> str:
    """The kubelet's last "Failed to pull image" message for ``pod`` (it names the cause; the back-off does not)."""
    events = stack.kube.core.list_namespaced_event(
        stack.namespace, field_selector=f"involvedObject.name={pod},reason=Failed", _request_timeout=REQUEST_TIMEOUT
    ).items
    messages = [e.message for e in sorted(events, key=event_time) if "pull" in (e.message or "").lower()]
    return messages[-1] if messages else ""


def ca_for(host: str, registry_ca: Path | None) -> Path | None:
    """The CA trusted beside the system's for ``host``: --registry-ca, else the embedded cluster's for its registry."""
    from localcluster.layout import default_layout
    from localcluster.registry import REGISTRY_HOST

    if registry_ca is not None:
        return registry_ca
    ca = default_layout().pki / "ca.crt"
    return ca if host == REGISTRY_HOST and ca.is_file() else None


def check_images(stack: Stack, registry_ca: Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """PLAT-IMAGES: the evidence rows and the problems (secrets unusable, images that cannot be pulled)."""
    uses = image_uses(stack)
    auths, problems = read_auths(stack, (name for use in uses.values() for name in use.secrets))
    findings = {image: Finding(use) for image, use in uses.items()}
    for finding in findings.values():
        ask_registry(finding, auths, ca_for(image_host(finding.use.image), registry_ca))
    observe_pods(stack, findings)
    problems += [p for f in findings.values() if (p := f.problem()) is not None]
    return [f.row() for f in findings.values()], problems
