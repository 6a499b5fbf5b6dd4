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
    ("registry", NODE_IP, 5443),
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


class Below:
    """A path ``parts`` below the Path attribute ``base`` of the object it is read from (a layout of files)."""

    def __init__(self, base: str, *parts: str) -> None:
        self.base = base
        self.parts = parts

    @overload
    def __get__(self, owner_object: None, owner: type[object]) -> Below: ...
    @overload
    def __get__(self, owner_object: object, owner: type[object]) -> Path: ...
    def __get__(self, owner_object: object | None, owner: type[object]) -> Below | Path:
        return self if owner_object is None else Path(getattr(owner_object, self.base)).joinpath(*self.parts)


def _in_root(*parts: str) -> Below:
    """A path of the state, ``parts`` below the layout's root."""
    return Below("root", *parts)


@dataclass(frozen=True)
class StateLayout:
    """Every path of one embedded cluster's state, derived from its root."""

    root: Path

    pki = _in_root("pki")
    kubeconfigs = _in_root("kubeconfig")
    config = _in_root("config")
    logs = _in_root("logs")
    pids = _in_root("pids")
    etcd_data = _in_root("etcd")
    kubelet_root = _in_root("kubelet")
    containerd_root = _in_root("containerd")
    cni_conf_dir = _in_root("cni", "net.d")
    cni_ipam_dir = _in_root("cni", "ipam")
    # The embedded registry's config, password, htpasswd, auth file and CA copy (localcluster.registry).
    registry = _in_root("registry")
    # containerd's registry hosts directory: ``<host:port>/hosts.toml`` per registry it pulls from.
    containerd_registry_hosts = _in_root("config", "registry-hosts")
    # Sysctl values found before ``up`` changed them, restored by ``down``.
    host_settings = _in_root("host-settings.json")

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
