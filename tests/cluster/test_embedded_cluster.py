"""The embedded cluster behaves like a real Kubernetes: workloads, networking, access paths, RBAC, safety."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.stream import portforward

from fixtures.portforward import close_websocket_when_done
from localcluster.cluster import EmbeddedCluster
from localcluster.layout import NODE_IP, NODE_NAME

from .conftest import Kubectl

pytestmark = pytest.mark.cluster


def web_pod(name: str, image: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    """A pod serving 'hello from <name>' over HTTP on port 8080 with busybox httpd."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [
                        "/bin/sh",
                        "-c",
                        f"mkdir -p /www && echo hello from {name} > /www/index.html && "
                        "echo serving && exec busybox httpd -f -p 8080 -h /www",
                    ],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                }
            ],
        },
    }


def controller(
    api_version: str, kind: str, name: str, image: str, *, replicas: int, selector: dict[str, object]
) -> dict[str, object]:
    """A ``kind`` named ``name`` keeping ``replicas`` copies of ``web_pod(name, image)``, found by ``selector``."""
    pod = web_pod(name, image)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": {"metadata": pod["metadata"], "spec": pod["spec"]},
        },
    }


def apply(kubectl: Kubectl, namespace: str, *objects: dict[str, object]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump_all(objects))


def run_in_pod(kubectl: Kubectl, namespace: str, pod: str, script: str, timeout: float = 60) -> str:
    return kubectl("exec", "-n", namespace, pod, "--", "/bin/sh", "-c", script, timeout=timeout)


def wait_ready(kubectl: Kubectl, namespace: str, target: str, timeout: str = "90s") -> None:
    kubectl("wait", "-n", namespace, "--for=condition=Ready", target, f"--timeout={timeout}")


def test_node_is_ready(kubectl: Kubectl) -> None:
    node = json.loads(kubectl("get", "node", NODE_NAME, "-o", "json"))
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True", f"node {NODE_NAME} Ready={ready}: {node['status']['conditions']}"
    version = json.loads(kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"]
    assert version.startswith("v1.34."), f"server reports {version}, expected the pinned v1.34.x"


def test_deployment_creates_replicaset_and_pod_from_local_image(
    kubectl: Kubectl, namespace: str, toolbox_image: str
) -> None:
    deployment = controller(
        "apps/v1", "Deployment", "web", toolbox_image, replicas=1, selector={"matchLabels": {"app": "web"}}
    )
    apply(kubectl, namespace, deployment)
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    replicasets = json.loads(kubectl("get", "rs", "-n", namespace, "-o", "json"))["items"]
    assert [rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets] == ["web"]
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json"))["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert pods[0]["status"]["containerStatuses"][0]["image"].endswith(toolbox_image.split("/", 1)[1])


def test_replicationcontroller_creates_pods(kubectl: Kubectl, namespace: str, toolbox_image: str) -> None:
    rc = controller("v1", "ReplicationController", "rc", toolbox_image, replicas=2, selector={"app": "rc"})
    apply(kubectl, namespace, rc)
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.readyReplicas}=2", "rc/rc", "--timeout=90s")
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=rc", "-o", "json"))["items"]
    assert len(pods) == 2
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"ReplicationController"}


@pytest.fixture
def web_service(kubectl: Kubectl, namespace: str, toolbox_image: str) -> dict[str, object]:
    """A web pod behind a NodePort Service named 'web', plus a client pod; returns the Service."""
    apply(
        kubectl,
        namespace,
        web_pod("web", toolbox_image),
        web_pod("client", toolbox_image),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    wait_ready(kubectl, namespace, "pod/web")
    wait_ready(kubectl, namespace, "pod/client")
    service: dict[str, object] = json.loads(kubectl("get", "svc", "web", "-n", namespace, "-o", "json"))
    return service


def test_service_name_resolves_and_clusterip_answers_from_a_pod(
    kubectl: Kubectl, namespace: str, web_service: dict[str, object]
) -> None:
    cluster_ip = web_service["spec"]["clusterIP"]  # type: ignore[index]
    resolved = run_in_pod(kubectl, namespace, "client", f"getent hosts web.{namespace}.svc.cluster.local")
    assert resolved.split()[0] == cluster_ip, f"DNS gave {resolved!r}, the Service has {cluster_ip}"
    short = run_in_pod(kubectl, namespace, "client", "getent hosts web")
    assert short.split()[0] == cluster_ip, "the pod's search path must resolve the short Service name"
    # kube-proxy programs the Service's rules asynchronously after its endpoint turns ready (seconds on a
    # loaded 2-core node): retry briefly, then fail with curl's last error.
    retry = "for i in $(seq 30); do curl -sS --max-time 2 http://web/ && exit 0; sleep 1; done; exit 1"
    body = run_in_pod(kubectl, namespace, "client", retry)
    assert body.strip() == "hello from web"


def test_nodeport_reaches_the_pod_from_the_host(web_service: dict[str, object]) -> None:
    node_port = web_service["spec"]["ports"][0]["nodePort"]  # type: ignore[index]
    # kube-proxy programs the rules asynchronously after the endpoint turns ready: allow it a few seconds.
    deadline = time.monotonic() + 15
    while True:
        try:
            body = _http_get(NODE_IP, node_port)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"NodePort {NODE_IP}:{node_port} still refused 15 s after the pod was ready"
                ) from None
            time.sleep(0.2)
    assert body.strip() == "hello from web"


def _http_get(host: str, port: int, timeout: float = 10) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.") and " 200 " in head.splitlines()[0], head
    return body


def test_kubectl_logs_exec_and_port_forward(kubectl: Kubectl, namespace: str, toolbox_image: str) -> None:
    apply(kubectl, namespace, web_pod("web", toolbox_image))
    wait_ready(kubectl, namespace, "pod/web")
    assert "serving" in kubectl("logs", "-n", namespace, "web")
    assert run_in_pod(kubectl, namespace, "web", "cat /www/index.html").strip() == "hello from web"
    forward = kubectl.popen("port-forward", "-n", namespace, "pod/web", ":8080")
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> 8080"
        assert "Forwarding from 127.0.0.1:" in line, line + (forward.stderr.read() if forward.stderr else "")
        local_port = int(line.split("127.0.0.1:")[1].split()[0])
        assert _http_get("127.0.0.1", local_port).strip() == "hello from web"
    finally:
        forward.terminate()
        forward.communicate(timeout=10)  # reaps the child and closes its pipes


def test_python_client_port_forward(
    admin_kubeconfig: Path, kubectl: Kubectl, namespace: str, toolbox_image: str
) -> None:
    apply(kubectl, namespace, web_pod("web", toolbox_image))
    wait_ready(kubectl, namespace, "pod/web")
    api = config.new_client_from_config(str(admin_kubeconfig))
    try:
        core = client.CoreV1Api(api)
        forward = portforward(core.connect_get_namespaced_pod_portforward, "web", namespace, ports="8080")
        close_websocket_when_done(forward)
        sock = forward.socket(8080)
        sock.settimeout(10)
        sock.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        forward.close()
        assert data.decode().endswith("hello from web\n"), data
    finally:
        api.close()


def test_rbac_denies_unbound_serviceaccount_and_allows_bound_one(
    kubectl: Kubectl, namespace: str, toolbox_image: str
) -> None:
    create_pod = json.dumps(web_pod("made-in-cluster", toolbox_image))
    script = (
        "SA=/var/run/secrets/kubernetes.io/serviceaccount; "
        "curl -sS -o /dev/null -w '%{http_code}' --cacert $SA/ca.crt "
        "-H \"Authorization: Bearer $(cat $SA/token)\" -H 'Content-Type: application/json' "
        f"-X POST --data '{create_pod}' "
        "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat $SA/namespace)/pods"
    )
    pod = web_pod("caller", toolbox_image)
    pod["spec"]["serviceAccountName"] = "caller"  # type: ignore[index]
    apply(kubectl, namespace, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "caller"}}, pod)
    wait_ready(kubectl, namespace, "pod/caller")
    assert run_in_pod(kubectl, namespace, "caller", script) == "403", "an unbound ServiceAccount must be denied"
    apply(
        kubectl,
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-maker"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "pod-maker"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-maker"},
            "subjects": [{"kind": "ServiceAccount", "name": "caller", "namespace": namespace}],
        },
    )
    assert run_in_pod(kubectl, namespace, "caller", script) == "201", "the bound ServiceAccount must create pods"
    wait_ready(kubectl, namespace, "pod/made-in-cluster")


def test_namespace_with_running_pods_is_deleted_completely(
    kubectl: Kubectl, embedded_cluster: EmbeddedCluster, toolbox_image: str
) -> None:
    name = f"selftest-delete-{int(time.time())}"
    kubectl("create", "namespace", name)
    kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    apply(kubectl, name, web_pod("a", toolbox_image), web_pod("b", toolbox_image))
    wait_ready(kubectl, name, "pod/a")
    wait_ready(kubectl, name, "pod/b")
    kubectl("delete", "namespace", name, "--timeout=90s")
    assert f"namespace/{name}" not in kubectl("get", "namespaces", "-o", "name").split()
    # Exited containers wait for the kubelet's garbage collection; none of the namespace may still run.
    ctr = ["ctr", "--address", str(embedded_cluster.layout.containerd_socket), "-n", "k8s.io"]
    ours = subprocess.run(
        [*ctr, "containers", "ls", "--quiet", f'labels."io.kubernetes.pod.namespace"=={name}'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    running = [
        line.split()[0]
        for line in subprocess.run(
            [*ctr, "tasks", "ls"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if "RUNNING" in line and line.split()[0] in ours
    ]
    assert ours, "the namespace's containers were never seen in containerd: the check would be vacuous"
    assert running == [], f"containers of the deleted namespace still run in containerd: {running}"


def test_pod_cannot_reach_outside_the_cluster(kubectl: Kubectl, namespace: str, toolbox_image: str) -> None:
    # A destination the host itself can reach proves the check is not vacuous: only pods are fenced in.
    outside = _host_reachable_outside_address()
    apply(kubectl, namespace, web_pod("prisoner", toolbox_image))
    wait_ready(kubectl, namespace, "pod/prisoner")
    probe = "if busybox nc -w 3 {0} {1} </dev/null; then echo REACHED; else echo BLOCKED; fi"
    # The same probe must succeed inside the cluster (the API server on the node address), or it proves nothing.
    assert run_in_pod(kubectl, namespace, "prisoner", probe.format(NODE_IP, 6443)).strip() == "REACHED"
    result = run_in_pod(kubectl, namespace, "prisoner", probe.format(*outside))
    assert result.strip() == "BLOCKED", f"a pod reached {outside[0]}:{outside[1]} outside the cluster"


def _host_reachable_outside_address() -> tuple[str, int]:
    for host in ("deb.debian.org", "pypi.org", "proxy.golang.org"):
        try:
            address = socket.getaddrinfo(host, 443, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
            with socket.create_connection((address, 443), timeout=5):
                return str(address), 443
        except OSError:
            continue
    pytest.skip("the host itself reaches no outside address, so pod egress cannot be shown to be blocked")
