"""Configuration and command lines of each embedded-cluster process.

Pure functions of the state layout and the binaries: they write config files and return argv, and
start nothing. Identities: see :mod:`localcluster.pki`.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from localcluster import registry
from localcluster.gobuild import BuiltBinaries
from localcluster.layout import (
    API_SERVER_URL,
    BRIDGE,
    CLUSTER_DOMAIN,
    CNI_NETWORK_NAME,
    ETCD_CLIENT_URL,
    KUBERNETES_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    PAUSE_IMAGE,
    POD_CIDR,
    SERVICE_CIDR,
    StateLayout,
)
from localcluster.pki import Identity, ensure_service_account_keys, issue

IDENTITIES = {
    "admin": Identity("admin", "geocube-acceptance-admin", "system:masters"),
    "apiserver": Identity(
        "apiserver",
        "kube-apiserver",
        dns_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
        ),
        ip_addresses=("127.0.0.1", NODE_IP, KUBERNETES_SERVICE_IP),
        server=True,
        client=False,
    ),
    # The API server calls kubelets (logs, exec, port-forward) with this identity.
    "apiserver-kubelet-client": Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
    "controller-manager": Identity("controller-manager", "system:kube-controller-manager"),
    "scheduler": Identity("scheduler", "system:kube-scheduler"),
    "kube-proxy": Identity("kube-proxy", "system:kube-proxy"),
    "kubelet": Identity("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
    "kubelet-serving": Identity(
        "kubelet-serving",
        f"system:node:{NODE_NAME}",
        "system:nodes",
        dns_names=(NODE_NAME, "localhost"),
        ip_addresses=(NODE_IP, "127.0.0.1"),
        server=True,
        client=False,
    ),
    "coredns": Identity("coredns", "geocube-acceptance:coredns"),
}

KUBECONFIG_USERS = ("admin", "controller-manager", "scheduler", "kube-proxy", "kubelet", "coredns")


def write_pki_and_kubeconfigs(layout: StateLayout) -> None:
    """Issue every certificate and write one kubeconfig per component (idempotent)."""
    for identity in IDENTITIES.values():
        issue(layout.pki, identity)
    ensure_service_account_keys(layout.pki)
    layout.kubeconfigs.mkdir(parents=True, exist_ok=True)
    for user in KUBECONFIG_USERS:
        write_kubeconfig(layout, user)


def write_kubeconfig(layout: StateLayout, user: str) -> Path:
    cert, key = issue(layout.pki, IDENTITIES[user])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "geocube-acceptance",
                "cluster": {"server": API_SERVER_URL, "certificate-authority": str(layout.pki / "ca.crt")},
            }
        ],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "geocube-acceptance", "context": {"cluster": "geocube-acceptance", "user": user}}],
        "current-context": "geocube-acceptance",
    }
    path = layout.kubeconfigs / f"{user}.kubeconfig"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _kubeconfig(layout: StateLayout, user: str) -> str:
    return str(layout.kubeconfigs / f"{user}.kubeconfig")


def etcd_argv(layout: StateLayout, bins: BuiltBinaries) -> list[str]:
    # Loopback only; the API server is its single client.
    return [
        str(bins.path("etcd")),
        "--name=geocube-acceptance",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={ETCD_CLIENT_URL}",
        f"--advertise-client-urls={ETCD_CLIENT_URL}",
        "--listen-peer-urls=http://127.0.0.1:23800",
        "--initial-advertise-peer-urls=http://127.0.0.1:23800",
        "--initial-cluster=geocube-acceptance=http://127.0.0.1:23800",
        "--listen-metrics-urls=",
        "--quota-backend-bytes=2147483648",
        "--snapshot-count=10000",
        "--log-level=warn",
    ]


def apiserver_argv(layout: StateLayout, bins: BuiltBinaries) -> list[str]:
    pki = layout.pki
    return [
        str(bins.path("kube-apiserver")),
        f"--etcd-servers={ETCD_CLIENT_URL}",
        f"--bind-address={NODE_IP}",
        f"--advertise-address={NODE_IP}",
        "--secure-port=6443",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--service-node-port-range=30000-32767",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--allow-privileged=true",
        "--profiling=false",
        "--event-ttl=1h",
        "--v=1",
    ]


def controller_manager_argv(layout: StateLayout, bins: BuiltBinaries) -> list[str]:
    return _controller_argv(
        layout,
        bins,
        "kube-controller-manager",
        "controller-manager",
        "--use-service-account-credentials=true",
        f"--root-ca-file={layout.pki / 'ca.crt'}",
        f"--service-account-private-key-file={layout.pki / 'sa.key'}",
        f"--cluster-signing-cert-file={layout.pki / 'ca.crt'}",
        f"--cluster-signing-key-file={layout.pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Pod addresses come from host-local IPAM on our bridge, not from node CIDR allocation.
        "--allocate-node-cidrs=false",
        "--controllers=*,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
    )


def scheduler_argv(layout: StateLayout, bins: BuiltBinaries) -> list[str]:
    return _controller_argv(layout, bins, "kube-scheduler", "scheduler")


def _controller_argv(layout: StateLayout, bins: BuiltBinaries, binary: str, user: str, *flags: str) -> list[str]:
    """A controller of the control plane: the API server's client as ``user``, single instance, loopback only."""
    kubeconfig = _kubeconfig(layout, user)
    return [
        str(bins.path(binary)),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        *flags,
        "--profiling=false",
        "--v=1",
    ]


def write_containerd_config(layout: StateLayout) -> Path:
    """A private containerd: own root, state and socket, CRI with cgroupfs and our pause image."""
    layout.config.mkdir(parents=True, exist_ok=True)
    sock = layout.containerd_socket
    text = f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.root / "containerd-opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Sandboxes ask for oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which some hosts (like
  # the CI sandboxes) do not grant even to root. Clamp to containerd's own score instead of failing.
  restrict_oom_score_adj = true
  enable_selinux = false
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # Our own runc state directory: never share the system containerd's /run/containerd/runc.
        Root = "{layout.containerd_state / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
{registry.containerd_registry_section(layout)}"""
    path = layout.config / "containerd.toml"
    path.write_text(text)
    return path


def write_cni_config(layout: StateLayout) -> Path:
    """Bridge plugin on ``gca0`` without masquerade; host-local IPAM in our own data dir."""
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    layout.cni_ipam_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam_dir),
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }
    path = layout.cni_conf_dir / "10-geocube-acceptance.conflist"
    path.write_text(json.dumps(config, indent=2))
    return path


def containerd_argv(layout: StateLayout) -> list[str]:
    return ["containerd", "--config", str(layout.config / "containerd.toml")]


def write_kubelet_config(layout: StateLayout) -> Path:
    pki = layout.pki
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [NODE_IP],
        # Pods get only cluster DNS: no host resolver is handed to them.
        "resolvConf": "",
        "failSwapOn": False,
        "maxPods": 110,
        "podPidsLimit": 4096,
        "serializeImagePulls": False,
        # No image GC: the pause image is imported (nothing could pull it back), and the stack's images,
        # pulled from the embedded registry, stay for the next run instead of being pulled again.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "fileCheckFrequency": "20s",
        "registerNode": True,
        "enableServer": True,
        "localStorageCapacityIsolation": True,
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }
    layout.config.mkdir(parents=True, exist_ok=True)
    path = layout.config / "kubelet.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kubelet_argv(layout: StateLayout, bins: BuiltBinaries) -> list[str]:
    return [
        str(bins.path("kubelet")),
        f"--config={layout.config / 'kubelet.yaml'}",
        f"--kubeconfig={_kubeconfig(layout, 'kubelet')}",
        f"--root-dir={layout.kubelet_root}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--pod-infra-container-image={PAUSE_IMAGE}",
        "--v=1",
    ]


def write_kube_proxy_config(layout: StateLayout) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": _kubeconfig(layout, "kube-proxy")},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # NodePorts answer on the node address only, never on the machine's outside interfaces.
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Leave the host's conntrack table size alone.
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"masqueradeAll": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
    }
    path = layout.config / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kube_proxy_argv(layout: StateLayout, bins: BuiltBinaries) -> list[str]:
    return [str(bins.path("kube-proxy")), f"--config={layout.config / 'kube-proxy.yaml'}", "--v=1"]


def write_corefile(layout: StateLayout) -> Path:
    corefile = f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {_kubeconfig(layout, "coredns")} geocube-acceptance
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {NODE_IP}
    errors
}}
"""
    path = layout.config / "Corefile"
    path.write_text(corefile)
    return path


def coredns_argv(layout: StateLayout, bins: BuiltBinaries) -> list[str]:
    return [str(bins.path("coredns")), "-conf", str(layout.config / "Corefile")]


# Objects the cluster needs beyond the API server's own bootstrap policy.
BOOTSTRAP_MANIFEST = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: geocube-acceptance:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: geocube-acceptance:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: geocube-acceptance:coredns
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: geocube-acceptance:coredns
"""
