"""Simulated nodes on the embedded cluster: kwok builds, its command line, and the fake Node objects.

kwok (``sigs.k8s.io/kwok``) keeps Node objects that carry ``kwok.x-k8s.io/node: fake`` Ready (status and
Lease heartbeats) and plays the pods bound to them through their life: Running with an address from
:data:`FAKE_POD_CIDR` within seconds, ``Succeeded`` for a Job's pods, and gone at once when deleted. No
container runs. The taint :data:`FAKE_NODE_TAINT` keeps every real pod off the fake nodes; a pod template
that must land there carries :data:`FAKE_NODE_SELECTOR` and :data:`FAKE_NODE_TOLERATION`.

Without ``--enable-crds`` and without stages in its configuration, kwok v0.7.0 plays its embedded default
stages (``node-initialize``, ``node-heartbeat``, ``pod-ready``, ``pod-complete``, ``pod-delete``; see
``pkg/kwok/cmd/root.go``), so no Stage CRD nor custom resource is installed on the cluster.

Fake pods' and nodes' addresses lie in :data:`FAKE_NETWORK`, which the project owns and routes to a
blackhole: nothing that contacts a fake pod (the autoscaler does) leaves the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localcluster.buildtools import GO_MISSING, go_executable, locked
from localcluster.errors import BuildError
from localcluster.layout import StateLayout
from localcluster.paths import cache_dir

Progress = Callable[[str], None]

KWOK_VERSION = "v0.7.0"
KWOK_PACKAGE = "sigs.k8s.io/kwok/cmd/kwok"

# The project's range for everything fake, next to the bridge (10.207.0.0/24) and services (10.208.0.0/24).
# The whole /16 is routed to a blackhole on this machine.
FAKE_NETWORK = "10.209.0.0/16"
# kwok's ``--cidr``: kwok keeps the host bits, so its first pod address is 10.209.0.1 (not the network
# address). Pods get 10.209.0.1 - 10.209.127.255; the upper half stays free for the nodes' address.
FAKE_POD_CIDR = "10.209.0.1/17"
# kwok's ``--node-ip``: the InternalIP it gives every fake node (and hostNetwork fake pods), in the blackhole.
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
    go = go_executable()
    if go is None:
        raise BuildError(GO_MISSING)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = staging / "build.log"
    # ``go install pkg@version`` builds outside any module: no GOFLAGS (-mod=...) nor workspace may leak in.
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(staging), GOFLAGS="", GOWORK="off")
    cmd = [go, "install", "-trimpath", "-ldflags", "-s -w", f"{KWOK_PACKAGE}@{KWOK_VERSION}"]
    started = time.monotonic()
    with log_path.open("wb") as out:
        result = subprocess.run(cmd, cwd=staging, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0 or not (staging / "kwok").is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(
            f"building kwok {KWOK_VERSION} failed (exit {result.returncode}).\n"
            f"command: GOBIN={staging} CGO_ENABLED=0 {' '.join(cmd)}\nlast lines of {log_path}:\n  "
            + "\n  ".join(tail)
            + "\nhint: check that the Go module proxy is reachable (GOPROXY), that go is >= 1.24, "
            "and that the disk is not full; then run it again."
        )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return KwokBinary(target / "kwok", time.monotonic() - started)


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


def fake_node(name: str, *, cpu: str = "32", memory: str = "256Gi", pods: int = 110) -> dict[str, Any]:
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
