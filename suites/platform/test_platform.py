"""The stack as Kubernetes runs it: the API answers, workloads are ready, identities and RBAC are tight."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from fixtures.checks import GEOCUBE_VERSION
from fixtures.config import Settings
from fixtures.deployed import AutoscalerConfig
from fixtures.errors import WaitTimeout, WorkloadFailed
from fixtures.stack import Stack
from geocube_stack.client import GeocubeClient
from suites.platform.images import check_images
from suites.platform.trial import run_trial_pod

pytestmark = pytest.mark.platform

# What the autoscaler does (GEOCUBE.md): list/create/delete its pods, read its ReplicationController.
AUTOSCALER_NEEDS = (("list", "pods"), ("create", "pods"), ("delete", "pods"), ("get", "replicationcontrollers"))
# What it must not be able to do: anything outside its namespace, or on other kinds there.
AUTOSCALER_MUST_NOT = (
    ("list", "pods", ""),  # cluster-wide
    ("create", "pods", "kube-system"),
    ("delete", "pods", "default"),
    ("list", "secrets", None),  # None: its own namespace
    ("update", "replicationcontrollers", None),
    ("create", "rolebindings", None),
)


@pytest.mark.requirement("PLAT-VERSION")
def test_api_server_answers_version(geocube: GeocubeClient, evidence: Any) -> None:
    version = geocube.version()
    evidence.add("version", version)
    assert version == GEOCUBE_VERSION, f"Version answered {version!r}, expected {GEOCUBE_VERSION!r}"


@pytest.mark.requirement("PLAT-WORKLOADS-READY")
def test_workloads_are_ready(deployed_stack: Stack, geocube_settings: Settings, evidence: Any) -> None:
    kube, namespace = deployed_stack.kube, deployed_stack.namespace
    states: dict[str, str] = {}
    problems: list[str] = []
    for d in kube.apps.list_namespaced_deployment(namespace, _request_timeout=15).items:
        want, ready = d.spec.replicas or 0, d.status.available_replicas or 0
        states[f"Deployment/{d.metadata.name}"] = f"{ready}/{want} available"
        if ready < want:
            problems.append(f"Deployment/{d.metadata.name}: {ready}/{want} available")
    controllers = kube.core.list_namespaced_replication_controller(namespace, _request_timeout=15).items
    for rc in controllers:
        want, ready = rc.spec.replicas or 0, rc.status.ready_replicas or 0
        states[f"ReplicationController/{rc.metadata.name}"] = f"{ready}/{want} ready"
        if ready < want:
            problems.append(f"ReplicationController/{rc.metadata.name}: {ready}/{want} ready")
    for job in kube.batch.list_namespaced_job(namespace, _request_timeout=15).items:
        done = (job.status.succeeded or 0) >= (job.spec.completions or 1)
        states[f"Job/{job.metadata.name}"] = "complete" if done else f"failed={job.status.failed or 0}"
        if not done:
            problems.append(f"Job/{job.metadata.name}: not complete (failed pods: {job.status.failed or 0})")
    evidence.add("workloads", states)
    assert states, f"namespace {namespace} holds no workload"
    assert not problems, "workloads not ready:\n  " + "\n  ".join(problems)
    # Workers with 0 replicas only run when the autoscaler needs them: prove their template runs now.
    trials: dict[str, float] = {}
    for rc in controllers:
        try:
            seconds = run_trial_pod(deployed_stack, kube.to_dict(rc), timeout=geocube_settings.timeouts.wait)
        except (WorkloadFailed, WaitTimeout) as err:
            pytest.fail(
                f"a pod from ReplicationController/{rc.metadata.name}'s template, as the autoscaler creates its "
                f"workers, does not become Ready: {err}",
                pytrace=False,
            )
        trials[f"ReplicationController/{rc.metadata.name}"] = round(seconds, 2)
    evidence.add("template pods Ready after (s)", trials)


def _allowed(deployed_stack: Stack, user: str, verb: str, resource: str, namespace: str) -> bool:
    review = k8s.V1SubjectAccessReview(
        spec=k8s.V1SubjectAccessReviewSpec(
            user=user,
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{deployed_stack.namespace}",
                "system:authenticated",
            ],
            resource_attributes=k8s.V1ResourceAttributes(verb=verb, resource=resource, namespace=namespace),
        )
    )
    answer = k8s.AuthorizationV1Api(deployed_stack.kube.api).create_subject_access_review(review, _request_timeout=15)
    return answer.status is not None and bool(answer.status.allowed)


@pytest.mark.requirement("PLAT-AUTOSCALER-RBAC")
def test_autoscaler_rbac_is_exact(deployed_stack: Stack, deployed_autoscaler: AutoscalerConfig, evidence: Any) -> None:
    namespace = deployed_stack.namespace
    user = f"system:serviceaccount:{namespace}:{deployed_autoscaler.service_account}"
    missing = [f"{v} {r}" for v, r in AUTOSCALER_NEEDS if not _allowed(deployed_stack, user, v, r, namespace)]
    excess = [
        f"{v} {r} in {'all namespaces' if ns == '' else ns or namespace}"
        for v, r, ns in AUTOSCALER_MUST_NOT
        if _allowed(deployed_stack, user, v, r, namespace if ns is None else ns)
    ]
    evidence.add("service account", user)
    evidence.add("missing", missing)
    evidence.add("excess", excess)
    assert deployed_autoscaler.namespace == namespace, (
        f"the autoscaler manages namespace {deployed_autoscaler.namespace!r} (-ns), not its own {namespace!r}"
    )
    assert not missing, (
        f"{user} may not {', '.join(missing)} in {namespace}: the autoscaler cannot create or delete consolidater "
        'pods. Fix: the Role needs apiGroups [""], pods: list/create/delete, replicationcontrollers: get, bound '
        "to this ServiceAccount in this namespace."
    )
    assert not excess, f"{user} has rights it does not need: {', '.join(excess)}. Fix: a namespaced Role only."


@pytest.mark.requirement("PLAT-SERVICE-ACCOUNTS")
def test_workloads_run_as_their_service_accounts(deployed_stack: Stack, evidence: Any) -> None:
    """Each workload runs as the ServiceAccount its manifest names — never the namespace's default one.

    What is intended comes from the rendered manifests, not from the Deployment under test: a workload
    edited to run as ``default`` must not pass by being compared with itself.
    """
    kube, namespace = deployed_stack.kube, deployed_stack.namespace
    accounts = {sa.metadata.name for sa in kube.core.list_namespaced_service_account(namespace).items}
    running: dict[str, list[str]] = {}
    problems = []
    for name in ("apiserver", "consolidater-autoscaler"):
        template = deployed_stack.get("Deployment", name).body["spec"]["template"]
        intended = str(template["spec"].get("serviceAccountName") or "default")
        selector = ",".join(f"{k}={v}" for k, v in (template.get("metadata") or {}).get("labels", {}).items())
        if intended == "default":
            problems.append(
                f"Deployment/{name} uses ServiceAccount 'default' (the namespace's default one, shared by everything "
                "in it): give it its own, as the guide does (serviceAccountName)"
            )
        elif intended not in accounts:
            problems.append(f"ServiceAccount {intended} (for Deployment/{name}) does not exist")
        pods = kube.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=15).items
        running[name] = sorted({p.spec.service_account_name for p in pods})
        if not pods:
            problems.append(f"no pod of Deployment/{name} ({selector})")
        problems += [
            f"pod {p.metadata.name} runs as {p.spec.service_account_name!r}, not {intended!r} as its manifest says"
            for p in pods
            if p.spec.service_account_name != intended
        ]
    evidence.add("service accounts of running pods", running)
    assert not problems, "\n".join(problems)


@pytest.mark.requirement("PLAT-IMAGES")
def test_every_image_can_be_pulled_with_the_configured_credentials(
    deployed_stack: Stack, geocube_settings: Settings, evidence: Any
) -> None:
    """Each workload's images (the autoscaler's worker template included) are asked of their registry with the
    pull Secrets the pods name; the digest each pod runs is recorded beside the registry's."""
    rows, problems = check_images(deployed_stack, geocube_settings.registry_ca)
    evidence.add("images", rows)
    assert rows, f"namespace {deployed_stack.namespace} holds no workload with images"
    assert not problems, "images that cannot be pulled as configured:\n  " + "\n  ".join(problems)
