"""Simulated nodes on the embedded cluster: kwok builds, its command line, and the fake Node objects.

kwok (``sigs.k8s.io/kwok``) keeps Node objects that carry ``kwok.x-k8s.io/node: fake`` Ready (status and
Lease heartbeats) and plays the pods bound to them through their life: Running with an address from
:data:`FAKE_POD_CIDR` within seconds, ``Succeeded`` for a Job's pods, and gone at once when deleted. No
container runs. The taint :data:`FAKE_NODE_TAINT` keeps every real pod off the fake nodes; a pod template
that must land there carries :data:`FAKE_NODE_SELECTOR` and :data:`FAKE_NODE_TOLERATION`.

Without ``--enable-crds`` and without stages in its configuration, kwok v0.7.0 plays its embedded default
stages (``node-initialize``, ``node-heartbeat``, ``pod-ready``, ``pod-complete``, ``pod-delete``; see
``pkg/kwok/cmd/root.go``), so no Stage CRD nor custom resource is installed on the cluster.

Fake pods' and nodes' addresses lie in :data:`FAKE_NETWORK`, which the project owns and routes as
``unreachable`` (:func:`localcluster.network.add_unreachable_route`): whatever contacts a fake pod (the
autoscaler does) fails at once and nothing leaves the machine.

``cluster up --fake-nodes N`` starts kwok last and creates the N Node objects; the count is kept in the
state (:func:`save_fake_nodes`) so ``status`` expects kwok only then, and ``down`` deletes the Node
objects before the API server stops (they live in etcd, which outlives ``down``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localcluster.buildtools import locked
from localcluster.errors import ClusterError, StartupError
from localcluster.gobuild import staged_go_build, staging_dir
from localcluster.layout import StateLayout
from localcluster.paths import cache_dir
from localcluster.processes import tail

Progress = Callable[[str], None]

KWOK_VERSION = "v0.7.0"
KWOK_PACKAGE = "sigs.k8s.io/kwok/cmd/kwok"

# The project's range for everything fake, next to the bridge (10.207.0.0/24) and services (10.208.0.0/24).
# The whole /16 is an ``unreachable`` route on this machine while kwok runs.
FAKE_NETWORK = "10.209.0.0/16"
# kwok's ``--cidr``: kwok keeps the host bits, so its first pod address is 10.209.0.1 (not the network
# address). Pods get 10.209.0.1 - 10.209.127.255; the upper half stays free for the nodes' address.
FAKE_POD_CIDR = "10.209.0.1/17"
# kwok's ``--node-ip``: the InternalIP it gives every fake node (and hostNetwork fake pods), unreachable.
FAKE_NODE_IP = "10.209.255.254"
# kwok's own HTTP server (/healthz, /readyz, /metrics), loopback only. Free among the cluster's ports
# (layout.PORTS) and not kubelet's (10250) nor kube-proxy's (10249, 10256).
KWOK_PORT = 10260
KWOK_SERVER_ADDRESS = f"127.0.0.1:{KWOK_PORT}"
KWOK_HEALTH_PATH = "/healthz"
# kubelet's default Lease duration (kwokctl and kwok's "out of cluster" docs pass the same).
NODE_LEASE_SECONDS = 40

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
FAKE_NODE_ANNOTATION_VALUE = "fake"
FAKE_NODE_LABEL = "geocube-acceptance/fake-node"
FAKE_NODE_PREFIX = "geocube-acceptance-fake-"

# A pod template that must run on a fake node: ``nodeSelector`` and one of its ``tolerations``.
FAKE_NODE_SELECTOR: dict[str, str] = {FAKE_NODE_LABEL: "true"}
FAKE_NODE_TAINT: dict[str, str] = {
    "key": FAKE_NODE_ANNOTATION,
    "value": FAKE_NODE_ANNOTATION_VALUE,
    "effect": "NoSchedule",
}
FAKE_NODE_TOLERATION: dict[str, str] = {"operator": "Equal", **FAKE_NODE_TAINT}

# The pods a fake node takes: a small node (a cloud VM's pod limit is often 17 to 58), so a pool too small for
# a target is a few autoscaler updates away (AS-SCALE-PENDING fills one node: 3 updates, where 110 took 7).
FAKE_NODE_PODS = 32
# The most fake nodes ``up --fake-nodes`` starts. Each is a Node status and a Lease that kwok renews every
# ~10 s through the one API server of a 2-core machine; 64 nodes of FAKE_NODE_PODS also fit FAKE_POD_CIDR.
MAX_FAKE_NODES = 64
FAKE_NODES_FIX = f"pass --fake-nodes N with 0 <= N <= {MAX_FAKE_NODES} (0, the default, starts no kwok)"
# kwok makes a created node Ready in well under a second; a minute covers 64 on a loaded machine.
FAKE_NODES_READY_TIMEOUT = 60.0
API_TIMEOUT = 15.0  # seconds for one request to the API server


@dataclass(frozen=True)
class KwokBinary:
    """The built kwok executable."""

    path: Path
    seconds: float  # 0.0 on a cache hit


def kwok_dir() -> Path:
    """The version-keyed cache directory holding ``kwok`` (and its ``build.log``)."""
    return cache_dir() / f"kwok-{KWOK_VERSION}"


def ensure_kwok(progress: Progress | None = None) -> KwokBinary:
    """Return the cached kwok binary, building it with ``go install`` first if this version has none."""
    target = kwok_dir()
    if (target / "kwok").is_file():
        return KwokBinary(target / "kwok", 0.0)
    with locked(target):
        if (target / "kwok").is_file():  # built by another process while this one waited
            return KwokBinary(target / "kwok", 0.0)
        if progress is not None:
            progress(f"building kwok {KWOK_VERSION} from the Go module proxy (about 75 s cold on 2 cores)")
        return _build(target)


def _build(target: Path) -> KwokBinary:
    seconds = staged_go_build(
        target,
        ["install", "-trimpath", "-ldflags", "-s -w", f"{KWOK_PACKAGE}@{KWOK_VERSION}"],
        what=f"kwok {KWOK_VERSION}",
        output="kwok",
        # ``go install pkg@version`` builds outside any module: no GOFLAGS (-mod=...) nor workspace may leak in.
        env={"CGO_ENABLED": "0", "GOBIN": str(staging_dir(target)), "GOFLAGS": "", "GOWORK": "off"},
        hint="check that the Go module proxy is reachable (GOPROXY), that go is >= 1.24, "
        "and that the disk is not full; then run it again.",
    )
    return KwokBinary(target / "kwok", seconds)


def kwok_config_path(layout: StateLayout) -> Path:
    return layout.config / "kwok.yaml"


def kwok_workdir(layout: StateLayout) -> Path:
    return layout.root / "kwok"


def write_kwok_config(layout: StateLayout) -> Path:
    """kwok's configuration: its server serves health and metrics only (no exec/logs/pprof handlers).

    It holds no Stage, so kwok plays its embedded default stages.
    """
    config = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {"enableDebuggingHandlers": False, "enableProfilingHandler": False},
    }
    layout.config.mkdir(parents=True, exist_ok=True)
    path = kwok_config_path(layout)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kwok_env(layout: StateLayout) -> dict[str, str]:
    """Environment additions for kwok: a work directory of ours instead of ``~/.kwok``.

    kwok always loads ``$KWOK_WORKDIR/kwok.yaml`` (default ``~/.kwok/kwok.yaml``) before ``--config``, and
    the first KwokConfiguration and any Stage found there would override ours.
    """
    return {"KWOK_WORKDIR": str(kwok_workdir(layout))}


def kwok_argv(layout: StateLayout, binary: KwokBinary, cidr: str = FAKE_POD_CIDR) -> list[str]:
    """kwok as the admin client, managing only the nodes annotated fake; its server on loopback only."""
    return [
        str(binary.path),
        f"--config={kwok_config_path(layout)}",
        f"--kubeconfig={layout.admin_kubeconfig}",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}={FAKE_NODE_ANNOTATION_VALUE}",
        f"--cidr={cidr}",
        f"--node-ip={FAKE_NODE_IP}",
        # Renew a Lease per fake node like a kubelet. kwok's binary defaults to 0 (no Lease, status every
        # ~10 min), and the node lifecycle controller would mark the nodes NotReady and evict their pods.
        f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
        # Without --node-port no daemon endpoint is published; an explicit address keeps kwok from
        # binding 0.0.0.0 (it would with --node-port alone).
        f"--server-address={KWOK_SERVER_ADDRESS}",
    ]


def fake_node_names(n: int) -> list[str]:
    return [f"{FAKE_NODE_PREFIX}{i}" for i in range(n)]


def fake_node(name: str, *, cpu: str = "32", memory: str = "256Gi", pods: int = FAKE_NODE_PODS) -> dict[str, Any]:
    """A Node manifest kwok manages (its annotation) and real pods avoid (its taint), as kwok's docs show."""
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                FAKE_NODE_ANNOTATION: FAKE_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
                FAKE_NODE_LABEL: "true",
            },
        },
        "spec": {"taints": [dict(FAKE_NODE_TAINT)]},
        "status": {
            "allocatable": dict(resources),
            "capacity": dict(resources),
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "kubeProxyVersion": "fake",
                "kubeletVersion": "fake",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    }


def is_fake_node(annotations: Mapping[str, str] | None) -> bool:
    """Whether a Node with these annotations is one kwok plays: no kubelet, and its addresses unreachable."""
    return (annotations or {}).get(FAKE_NODE_ANNOTATION) == FAKE_NODE_ANNOTATION_VALUE


def check_fake_node_count(count: int) -> int:
    """``count`` if ``up`` can start that many fake nodes; else ClusterError naming the bound and the fix."""
    if not 0 <= count <= MAX_FAKE_NODES:
        raise ClusterError(
            f"the number of fake nodes must be from 0 to {MAX_FAKE_NODES}, got {count}. Fix: {FAKE_NODES_FIX}"
        )
    return count


# ---- what this ``up`` started, for ``status`` and ``down`` ---------------------------------------------


def fake_nodes_state_path(layout: StateLayout) -> Path:
    return layout.root / "fake-nodes.json"


def save_fake_nodes(layout: StateLayout, count: int) -> None:
    """Remember that the cluster runs ``count`` fake nodes (0: forget, no file)."""
    path = fake_nodes_state_path(layout)
    if count == 0:
        path.unlink(missing_ok=True)
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"fake_nodes": check_fake_node_count(count), "kwok": KWOK_VERSION}) + "\n")
    partial.replace(path)  # whole or absent, never half-written


def load_fake_nodes(layout: StateLayout) -> int:
    """How many fake nodes the running cluster was asked for (0 when none, or no ``up`` asked)."""
    path = fake_nodes_state_path(layout)
    if not path.exists():
        return 0
    try:
        count = json.loads(path.read_text())["fake_nodes"]
        if not isinstance(count, int) or isinstance(count, bool):
            raise TypeError(f"fake_nodes is {count!r}, not a number")
        return check_fake_node_count(count)
    except (OSError, ValueError, KeyError, TypeError, ClusterError) as err:
        raise ClusterError(
            f"{path} is unreadable ({type(err).__name__}: {err}); it records how many fake nodes `cluster up` "
            "started. Fix: `geocube-acceptance cluster down` deletes the fake nodes and this file."
        ) from None


# ---- the Node objects, through the API server (``core``: the admin's kubernetes.client.CoreV1Api) ------


def create_fake_nodes(core: Any, names: Sequence[str]) -> None:
    """Create the Node objects kwok is to play; one that exists already stays (kwok plays it all the same)."""
    from kubernetes.client.exceptions import ApiException

    for name in names:
        try:
            core.create_node(fake_node(name), _request_timeout=API_TIMEOUT)
        except ApiException as err:
            if err.status != 409:  # AlreadyExists
                raise ClusterError(f"creating fake node {name} failed: {_api_message(err)}") from None


def delete_fake_nodes(core: Any, keep: Collection[str] = ()) -> list[str]:
    """Delete every Node annotated fake but those in ``keep``; returns the names deleted (NotFound is success)."""
    from kubernetes.client.exceptions import ApiException

    nodes = core.list_node(_request_timeout=API_TIMEOUT).items
    doomed = sorted(
        n.metadata.name for n in nodes if is_fake_node(n.metadata.annotations) and n.metadata.name not in keep
    )
    for name in doomed:
        try:
            core.delete_node(name, _request_timeout=API_TIMEOUT)
        except ApiException as err:
            if err.status != 404:
                raise ClusterError(f"deleting fake node {name} failed: {_api_message(err)}") from None
    return doomed


def readiness(node: Any) -> tuple[bool, str]:
    """A Node object's Ready condition: whether it is True, and how it reads (for a timeout's message)."""
    for condition in (node.status.conditions if node.status else None) or []:
        if condition.type == "Ready":
            return condition.status == "True", f"Ready={condition.status} ({condition.reason}: {condition.message})"
    return False, "no Ready condition yet"


def wait_fake_nodes_ready(core: Any, names: Sequence[str], *, timeout: float, log: Path) -> None:
    """Watch the fake nodes until each is Ready; StartupError names those that are not, and kwok's log tail."""
    from kubernetes import watch

    pending = dict.fromkeys(names, "not seen yet")
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        stream = watch.Watch()
        for event in stream.stream(
            core.list_node,
            label_selector=f"{FAKE_NODE_LABEL}=true",
            timeout_seconds=max(1, int(deadline - time.monotonic())),
        ):
            name = event["object"].metadata.name
            if name in pending and event["type"] != "DELETED":
                ready, pending[name] = readiness(event["object"])
                if ready:
                    del pending[name]
            if not pending:
                stream.stop()
    if pending:
        shown = "\n  ".join(f"{name}: {state}" for name, state in sorted(pending.items())[:10])
        raise StartupError(
            f"{len(pending)} of {len(names)} fake node(s) were not Ready after {timeout:.0f}s:\n  {shown}\n"
            f"kwok makes the nodes annotated {FAKE_NODE_ANNOTATION}={FAKE_NODE_ANNOTATION_VALUE} Ready; "
            f"last lines of {log}:\n{tail(log, 30)}"
        )


def _api_message(err: Any) -> str:
    """``status reason: message`` of an ApiException (its JSON body's message when there is one)."""
    try:
        message = json.loads(err.body)["message"]
    except (TypeError, ValueError, KeyError):
        message = err.body or ""
    return f"{err.status} {err.reason}: {message}".strip()
