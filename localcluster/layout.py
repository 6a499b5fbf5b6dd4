"""Names, addresses and ports of the embedded cluster, and where its state lives.

Everything is chosen by us and named exactly, so ``down`` removes precisely what ``up`` created.
Pods and services live on private ranges behind a bridge of our own; the API server, kubelet and
CoreDNS listen on the bridge address, etcd and component health ports on loopback only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import overload

from localcluster.paths import state_dir

NODE_NAME = "geocube-acceptance-node"
BRIDGE = "gca0"
POD_CIDR = "10.207.0.0/24"
NODE_IP = "10.207.0.1"  # the bridge's address: pods' gateway, API server, kubelet and DNS
SERVICE_CIDR = "10.208.0.0/24"
KUBERNETES_SERVICE_IP = "10.208.0.1"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/geocube-acceptance/pause:3.10-1"
CNI_NETWORK_NAME = "geocube-acceptance"
IPTABLES_EGRESS_CHAIN = "GCA-EGRESS"

# (component, address, port) that must be free before ``up``; checked by the preflight.
PORTS: tuple[tuple[str, str, int], ...] = (
    ("etcd (client)", "127.0.0.1", 23790),
    ("etcd (peer)", "127.0.0.1", 23800),
    ("kube-apiserver", NODE_IP, 6443),
    ("kube-controller-manager", "127.0.0.1", 10257),
    ("kube-scheduler", "127.0.0.1", 10259),
    ("kubelet", NODE_IP, 10250),
    ("kubelet healthz", "127.0.0.1", 10248),
    ("kube-proxy metrics", "127.0.0.1", 10249),
    ("kube-proxy healthz", "127.0.0.1", 10256),
    ("coredns", NODE_IP, 53),
    ("coredns health", "127.0.0.1", 18080),
    ("coredns ready", "127.0.0.1", 18181),
)
ETCD_CLIENT_URL = "http://127.0.0.1:23790"
API_SERVER_URL = f"https://{NODE_IP}:6443"


class _InRoot:
    """A path of the state, ``parts`` below the layout's root."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, layout: None, owner: type[object]) -> _InRoot: ...
    @overload
    def __get__(self, layout: StateLayout, owner: type[object]) -> Path: ...
    def __get__(self, layout: StateLayout | None, owner: type[object]) -> _InRoot | Path:
        return self if layout is None else layout.root.joinpath(*self.parts)


@dataclass(frozen=True)
class StateLayout:
    """Every path of one embedded cluster's state, derived from its root."""

    root: Path

    pki = _InRoot("pki")
    kubeconfigs = _InRoot("kubeconfig")
    config = _InRoot("config")
    logs = _InRoot("logs")
    pids = _InRoot("pids")
    etcd_data = _InRoot("etcd")
    kubelet_root = _InRoot("kubelet")
    containerd_root = _InRoot("containerd")
    cni_conf_dir = _InRoot("cni", "net.d")
    cni_ipam_dir = _InRoot("cni", "ipam")
    # Sysctl values found before ``up`` changed them, restored by ``down``.
    host_settings = _InRoot("host-settings.json")

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfigs / "admin.kubeconfig"

    @property
    def containerd_state(self) -> Path:
        # Runtime state (shim sockets, rootfs mounts) must be on a short path: unix socket paths are
        # limited to 108 bytes and containerd nests ids under this directory.
        return Path("/run/geocube-acceptance")

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_state / "containerd.sock"


def default_layout() -> StateLayout:
    return StateLayout(state_dir())
