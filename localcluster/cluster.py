"""Bring the embedded cluster up and down, and report its health.

``up`` is idempotent and exception-safe: cleanup of a crashed previous run happens first, and a
failure half-way tears down whatever was already started (testcontainers' ``start()`` discipline).
``down`` removes exactly what ``up`` created, by exact name or recorded id.

Simulated nodes (``up --fake-nodes N``, :mod:`localcluster.kwok`) are optional: kwok starts last, only
when asked for, and the count is kept in the state so that ``status`` expects kwok only then.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster import components as comp
from localcluster import kwok, network, processes, registry
from localcluster.errors import ClusterError, StartupError
from localcluster.gobuild import BuiltBinaries, ensure_binaries
from localcluster.image_spec import BuiltImage
from localcluster.images import build_pause_image, import_image
from localcluster.layout import BRIDGE, IPTABLES_EGRESS_CHAIN, NODE_IP, NODE_NAME, StateLayout, default_layout
from localcluster.preflight import run_preflight

Progress = Callable[[str], None]

# Start order; ``down`` stops in reverse. Those in OPTIONAL start only when asked for (see components()).
ORDER = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "registry",
    "containerd",
    "kubelet",
    "kube-proxy",
    "coredns",
    "kwok",
)
OPTIONAL = frozenset({"kwok"})

STARTUP_TIMEOUTS = {
    "etcd": 30.0,
    "kube-apiserver": 90.0,
    "kube-controller-manager": 60.0,
    "kube-scheduler": 60.0,
    "registry": 15.0,
    "containerd": 30.0,
    "kubelet": 60.0,
    "kube-proxy": 30.0,
    "coredns": 30.0,
    "kwok": 30.0,
}


@dataclass(frozen=True)
class HealthCheck:
    scheme: str  # "http", "https" or "containerd"
    host: str
    port: int
    path: str


HEALTH = {
    "etcd": HealthCheck("http", "127.0.0.1", 23790, "/health"),
    "kube-apiserver": HealthCheck("https", NODE_IP, 6443, "/readyz"),
    "kube-controller-manager": HealthCheck("https", "127.0.0.1", 10257, "/healthz"),
    "kube-scheduler": HealthCheck("https", "127.0.0.1", 10259, "/healthz"),
    "registry": HealthCheck("registry", NODE_IP, registry.REGISTRY_PORT, "/v2/"),
    "containerd": HealthCheck("containerd", "", 0, ""),
    "kubelet": HealthCheck("http", "127.0.0.1", 10248, "/healthz"),
    "kube-proxy": HealthCheck("http", "127.0.0.1", 10256, "/healthz"),
    "coredns": HealthCheck("http", "127.0.0.1", 18181, "/ready"),
    "kwok": HealthCheck("http", "127.0.0.1", kwok.KWOK_PORT, kwok.KWOK_HEALTH_PATH),
}

# Environment additions of a component, beyond this process's own (less any proxy).
COMPONENT_ENV: dict[str, Callable[[StateLayout], dict[str, str]]] = {"kwok": kwok.kwok_env}


def components(fake_nodes: int, recorded: Collection[str] = ()) -> tuple[str, ...]:
    """The components a cluster with ``fake_nodes`` simulated nodes runs, in start order.

    An optional one that has a process record is listed too, whatever was asked: if it runs, it is ours.
    """
    return tuple(name for name in ORDER if name not in OPTIONAL or fake_nodes > 0 or name in recorded)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    detail: str  # health answer, or the log tail of a dead process

    def line(self) -> str:
        state = "healthy" if self.healthy else ("running, unhealthy" if self.running else "NOT RUNNING")
        return f"{self.name:<24} {state:<20} pid={self.pid or '-'}"


class EmbeddedCluster:
    """The single-node cluster whose state lives under one :class:`StateLayout`."""

    def __init__(self, layout: StateLayout | None = None, progress: Progress | None = None) -> None:
        self.layout = layout or default_layout()
        self.progress: Progress = progress or (lambda message: None)

    # ---- queries -------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.layout.admin_kubeconfig

    def _records(self) -> dict[str, processes.ProcessRecord]:
        return {r.name: r for r in processes.load(self.layout.pids)}

    def components(self) -> tuple[str, ...]:
        """The components this cluster runs (kwok only when its ``up`` asked for fake nodes)."""
        return components(kwok.load_fake_nodes(self.layout), self._records())

    def status(self) -> list[ComponentStatus]:
        records = self._records()
        result = []
        for name in self.components():
            record = records.get(name)
            running = record is not None and processes.is_alive(record)
            healthy, answer = self._probe(name) if running else (False, "")
            if record is not None and not running:
                answer = f"exited; last lines of {record.log}:\n{processes.tail(record.log)}"
            result.append(ComponentStatus(name, running, healthy, record.pid if record else None, answer))
        return result

    def is_healthy(self) -> bool:
        return all(s.healthy for s in self.status())

    def _has_leftovers(self) -> bool:
        return (
            bool(self._records())
            or network.bridge_exists()
            or bool(self._our_mounts())
            or network.unreachable_route_exists(kwok.FAKE_NETWORK)
        )

    def _probe(self, name: str) -> tuple[bool, str]:
        check = HEALTH[name]
        if check.scheme == "registry":  # healthy: it asks for credentials (401), over TLS from our CA
            return registry.probe(f"{check.host}:{check.port}", self.layout.pki / "ca.crt")
        if check.scheme == "containerd":
            result = subprocess.run(
                ["ctr", "--address", str(self.layout.containerd_socket), "version"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            lines = (result.stdout or result.stderr).strip().splitlines()
            return result.returncode == 0, lines[-1] if lines else ""

        try:
            connection: http.client.HTTPConnection
            if check.scheme == "https":
                context = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
                context.load_cert_chain(self.layout.pki / "admin.crt", self.layout.pki / "admin.key")
                context.check_hostname = check.host == NODE_IP
                if check.host != NODE_IP:  # controller-manager/scheduler serve self-signed certs
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                connection = http.client.HTTPSConnection(check.host, check.port, timeout=3, context=context)
            else:
                connection = http.client.HTTPConnection(check.host, check.port, timeout=3)
            connection.request("GET", check.path)
            response = connection.getresponse()
            body = response.read().decode(errors="replace").strip()
            connection.close()
            return response.status == 200, f"HTTP {response.status} {body[:200]}"
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            return False, f"{check.scheme}://{check.host}:{check.port}{check.path}: {exc}"

    # ---- up ------------------------------------------------------------------------------------
    def up(self, build_log: Path | None = None, fake_nodes: int | None = None) -> Path:
        """Start the cluster (building what is missing) and return the admin kubeconfig path.

        ``fake_nodes``: how many kwok nodes to run beside the real one (0: none, kwok stopped); None keeps
        what a running cluster has, and starts none.
        """
        if fake_nodes is not None:
            kwok.check_fake_node_count(fake_nodes)  # before anything starts
        if self._records():
            current = kwok.load_fake_nodes(self.layout)
            wanted = current if fake_nodes is None else fake_nodes
            statuses = self.status()
            if all(s.healthy for s in statuses):
                self.progress("embedded cluster already running")
                if wanted != current:
                    self._resize_fake_nodes(wanted)
                return self.kubeconfig
            dead = [s.name for s in statuses if not s.running]
            if dead and all(s.healthy for s in statuses if s.running) and network.bridge_exists():
                # Only some components died: restart those, keep the workloads of the others.
                self.progress(f"restarting component(s) that died: {', '.join(dead)}")
                bins = ensure_binaries(build_log)
                for name in dead:
                    if name not in OPTIONAL:  # _set_fake_nodes starts kwok if it is wanted
                        self._start(name, self._argv(name, bins), timeout=STARTUP_TIMEOUTS[name])
                self._wait_node_ready(timeout=60)
                if wanted or current:
                    self._resize_fake_nodes(wanted)
                return self.kubeconfig
        if self._has_leftovers():
            self.progress("found processes, mounts or network objects of a previous run: cleaning them first")
            self.down()
        run_preflight(self.layout.root)
        self.progress("building or reusing the Kubernetes binaries (cold build takes ~20 min on 2 cores)")
        bins = ensure_binaries(build_log)
        self.progress("building or reusing the pause image")
        pause = build_pause_image()
        try:
            self._start_all(bins, pause, fake_nodes or 0)
        except BaseException:
            # Exception-safe start: nothing half-started survives a failed or interrupted up.
            with contextlib.suppress(Exception):
                self.down()
            raise
        return self.kubeconfig

    def _start_all(self, bins: BuiltBinaries, pause: BuiltImage, fake_nodes: int) -> None:
        layout = self.layout
        for directory in (layout.root, layout.logs, layout.pids, layout.config):
            directory.mkdir(parents=True, exist_ok=True)
        layout.root.chmod(0o700)
        self.progress("network: bridge gca0, sysctls, egress firewall")
        network.create_bridge()
        network.apply_sysctls(layout.host_settings)
        network.install_egress_firewall()
        comp.write_pki_and_kubeconfigs(layout)
        registry.write_registry_files(registry.RegistryFiles.of(layout))
        registry.write_containerd_registry_hosts(layout)
        comp.write_containerd_config(layout)
        comp.write_cni_config(layout)
        comp.write_kubelet_config(layout)
        comp.write_kube_proxy_config(layout)
        comp.write_corefile(layout)

        layout.containerd_state.mkdir(parents=True, exist_ok=True)
        for name in components(0):
            self._start(name, self._argv(name, bins), timeout=STARTUP_TIMEOUTS[name])
            if name == "kube-apiserver":
                self._apply(comp.BOOTSTRAP_MANIFEST, bins)
            if name == "containerd":
                import_image(pause, str(layout.containerd_socket))
        self._wait_node_ready(timeout=60)
        # Also with 0: fake nodes an earlier ``up`` left in etcd (a failed ``down``) are deleted.
        self._set_fake_nodes(fake_nodes)
        self.progress(f"embedded cluster ready; admin kubeconfig: {self.kubeconfig}")

    def _argv(self, name: str, bins: BuiltBinaries) -> list[str]:
        layout = self.layout
        builders: dict[str, Callable[[], list[str]]] = {
            "etcd": lambda: comp.etcd_argv(layout, bins),
            "kube-apiserver": lambda: comp.apiserver_argv(layout, bins),
            "kube-controller-manager": lambda: comp.controller_manager_argv(layout, bins),
            "kube-scheduler": lambda: comp.scheduler_argv(layout, bins),
            "registry": lambda: registry.registry_argv(registry.RegistryFiles.of(layout)),
            "containerd": lambda: comp.containerd_argv(layout),
            "kubelet": lambda: comp.kubelet_argv(layout, bins),
            "kube-proxy": lambda: comp.kube_proxy_argv(layout, bins),
            "coredns": lambda: comp.coredns_argv(layout, bins),
            "kwok": self._kwok_argv,
        }
        return builders[name]()

    def _kwok_argv(self) -> list[str]:
        """kwok's command line, once its binary, configuration and work directory are in place."""
        kwok.write_kwok_config(self.layout)
        kwok.kwok_workdir(self.layout).mkdir(parents=True, exist_ok=True)
        return kwok.kwok_argv(self.layout, kwok.ensure_kwok(self.progress))

    def _start(self, name: str, argv: list[str], timeout: float) -> None:
        self.progress(f"starting {name}")
        env = dict(os.environ)
        # The cluster must never reach outside through a proxy the user's shell happens to set.
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"):
            env.pop(key, None)
        env.update(COMPONENT_ENV[name](self.layout) if name in COMPONENT_ENV else {})
        record = processes.start(name, argv, self.layout.pids, self.layout.logs, env=env)
        deadline = time.monotonic() + timeout
        answer = ""
        while time.monotonic() < deadline:
            if not processes.is_alive(record):
                raise StartupError(
                    f"{name} exited during start-up (command: {' '.join(argv[:2])} ...).\n"
                    f"last lines of {record.log}:\n{processes.tail(record.log, 30)}"
                )
            healthy, answer = self._probe(name)
            if healthy:
                return
            time.sleep(0.2)
        raise StartupError(
            f"{name} did not become healthy within {timeout:.0f}s (last answer: {answer}).\n"
            f"last lines of {record.log}:\n{processes.tail(record.log, 30)}"
        )

    def kubectl(self, *args: str, input_text: str | None = None, timeout: float = 60) -> str:
        """Run our kubectl as the cluster admin; raise with its stderr on failure."""
        bins = ensure_binaries()
        result = subprocess.run(
            [str(bins.path("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _apply(self, manifest: str, bins: BuiltBinaries) -> None:
        del bins
        self.kubectl("apply", "--server-side", "--field-manager=geocube-acceptance", "-f", "-", input_text=manifest)

    @contextlib.contextmanager
    def _core_api(self) -> Iterator[Any]:
        """The cluster admin's ``CoreV1Api`` (the Python client), closed after the block."""
        from kubernetes import client, config

        api_client = config.new_client_from_config(str(self.kubeconfig))
        try:
            yield client.CoreV1Api(api_client)
        finally:
            api_client.close()

    def _wait_node_ready(self, timeout: float) -> None:
        """Watch the node object until its Ready condition is True."""
        from kubernetes import watch

        self.progress(f"waiting up to {timeout:.0f}s for node {NODE_NAME} to be Ready")
        deadline = time.monotonic() + timeout
        last = "node not registered yet"
        with self._core_api() as core:
            while time.monotonic() < deadline:
                stream = watch.Watch().stream(
                    core.list_node,
                    field_selector=f"metadata.name={NODE_NAME}",
                    timeout_seconds=max(1, int(deadline - time.monotonic())),
                )
                for event in stream:
                    node = event["object"]
                    for condition in node.status.conditions or []:
                        if condition.type == "Ready":
                            last = f"Ready={condition.status} ({condition.reason}: {condition.message})"
                            if condition.status == "True":
                                return
        raise StartupError(
            f"node {NODE_NAME} was not Ready after {timeout:.0f}s; last condition: {last}.\n"
            f"kubelet log:\n{processes.tail(self.layout.logs / 'kubelet.log', 30)}"
        )

    # ---- fake nodes ----------------------------------------------------------------------------
    def _set_fake_nodes(self, count: int) -> None:
        """Run exactly ``count`` fake nodes beside the real one: kwok, its unreachable route, the Node objects.

        0 stops kwok and deletes every fake node, also those an earlier ``up`` left in etcd.
        """
        kwok.save_fake_nodes(self.layout, count)  # first: should what follows fail, status and down know
        if count == 0:
            self._stop_kwok()
            with self._core_api() as core:
                deleted = kwok.delete_fake_nodes(core)
            if deleted:
                self.progress(f"deleted {len(deleted)} fake node(s) left from an earlier up: {', '.join(deleted)}")
            network.remove_unreachable_route(kwok.FAKE_NETWORK)
            return
        self.progress(f"network: route {kwok.FAKE_NETWORK} (the fake nodes' and pods' addresses) unreachable")
        network.add_unreachable_route(kwok.FAKE_NETWORK)
        record = self._records().get("kwok")
        if record is None or not processes.is_alive(record):
            self._start("kwok", self._kwok_argv(), timeout=STARTUP_TIMEOUTS["kwok"])
        names = kwok.fake_node_names(count)
        timeout = kwok.FAKE_NODES_READY_TIMEOUT
        self.progress(f"creating {count} fake node(s) and waiting up to {timeout:.0f}s for them to be Ready")
        with self._core_api() as core:
            kwok.delete_fake_nodes(core, keep=names)
            kwok.create_fake_nodes(core, names)
            kwok.wait_fake_nodes_ready(core, names, timeout=timeout, log=self.layout.logs / "kwok.log")

    def _resize_fake_nodes(self, count: int) -> None:
        """:meth:`_set_fake_nodes` on a running cluster: if it fails, no half of kwok stays; the cluster runs on."""
        try:
            self._set_fake_nodes(count)
        except BaseException:
            with contextlib.suppress(Exception):
                self._set_fake_nodes(0)
            raise

    def _stop_kwok(self) -> None:
        record = self._records().get("kwok")
        if record is not None:
            processes.stop(record, self.layout.pids)

    def _delete_fake_nodes_for_down(self, records: dict[str, processes.ProcessRecord]) -> None:
        """Delete the fake Node objects while the API server still runs: they live in etcd, which outlives down."""
        apiserver = records.get("kube-apiserver")
        if apiserver is None or not processes.is_alive(apiserver):
            raise ClusterError(
                "the fake Node objects could not be deleted: the API server is not running. They stay in etcd "
                "until the next `geocube-acceptance cluster up`, which deletes them."
            )
        with self._core_api() as core:
            kwok.delete_fake_nodes(core)

    # ---- down ----------------------------------------------------------------------------------
    def down(self, purge: bool = False) -> list[str]:
        """Stop everything ``up`` started and remove what it created; returns the problems met."""
        problems: list[str] = []
        records = self._records()

        def step(what: str, action: Callable[[], object]) -> None:
            try:
                action()
            except Exception as exc:  # every step runs; errors are collected, not fatal
                problems.append(f"{what}: {exc}")

        if "kwok" in records:
            step("stop kwok", lambda: processes.stop(records["kwok"], self.layout.pids))
        if "kwok" in records or kwok.fake_nodes_state_path(self.layout).exists():
            step("delete fake nodes", lambda: self._delete_fake_nodes_for_down(records))
        for name in ("coredns", "kube-proxy", "kube-scheduler", "kube-controller-manager"):
            if name in records:
                step(f"stop {name}", functools.partial(processes.stop, records[name], self.layout.pids))
        if "kubelet" in records:
            step("stop kubelet", lambda: processes.stop(records["kubelet"], self.layout.pids))
        netns_paths: list[str] = []
        if "containerd" in records and processes.is_alive(records["containerd"]):
            step("list pod network namespaces", lambda: netns_paths.extend(self._pod_netns_paths()))
            step("kill pod containers", self._kill_containers)
        if "containerd" in records:
            step("stop containerd", lambda: processes.stop(records["containerd"], self.layout.pids))
        step("stop containerd shims", self._kill_our_shims)
        for name in ("kube-apiserver", "etcd", "registry"):
            if name in records:
                step(f"stop {name}", functools.partial(processes.stop, records[name], self.layout.pids))
        # Sandboxes found through containerd, plus any whose veth still hangs on our bridge (containerd dead).
        netns_paths += [f"/var/run/netns/{name}" for name in network.bridge_netns_names()]
        for path in sorted(set(netns_paths)):
            step(f"remove network namespace {path}", functools.partial(self._remove_netns, path))
        step("unmount", self._unmount_ours)
        step("remove kube-proxy rules", self._cleanup_kube_proxy_rules)
        step("remove kubelet rules", network.remove_kubelet_rules)
        step("remove egress firewall", network.remove_egress_firewall)
        step("remove the fake network's route", lambda: network.remove_unreachable_route(kwok.FAKE_NETWORK))
        step("forget the fake nodes", lambda: kwok.save_fake_nodes(self.layout, 0))
        step("delete bridge", network.delete_bridge)
        step("restore sysctls", lambda: network.restore_sysctls(self.layout.host_settings))
        step("remove pod cgroups", _remove_kubepods_cgroups)
        step("clear pod IP allocations", lambda: shutil.rmtree(self.layout.cni_ipam_dir, ignore_errors=True))
        problems += [f"left behind: {item}" for item in self.leftovers()]
        if purge:
            step(
                "wipe state",
                lambda: shutil.rmtree(self.layout.root, ignore_errors=False) if self.layout.root.exists() else None,
            )
            step("wipe runtime state", lambda: shutil.rmtree(self.layout.containerd_state, ignore_errors=True))
            # Beside the state (paths.stack_storage_dir for the default layout): the stacks' data goes with it.
            stack_storage = self.layout.root.parent / "stack-storage"
            step("wipe the stacks' local storage", lambda: shutil.rmtree(stack_storage, ignore_errors=True))
            registry_storage = registry.RegistryFiles.of(self.layout).storage
            step("wipe the registry's storage", lambda: shutil.rmtree(registry_storage, ignore_errors=True))
        return problems

    def leftovers(self) -> list[str]:
        """What of ours still exists on the host (empty after a clean ``down``)."""
        found = [f"process {r.name} (pid {r.pid})" for r in self._records().values() if processes.is_alive(r)]
        found += [f"containerd shim pid {pid}" for pid in self._our_shim_pids()]
        found += [f"mount {m}" for m in self._our_mounts()]
        if network.bridge_exists():
            found.append(f"bridge {BRIDGE}")
        if network.egress_firewall_installed():
            found.append(f"iptables jump to {IPTABLES_EGRESS_CHAIN}")
        if network.unreachable_route_exists(kwok.FAKE_NETWORK):
            found.append(f"route unreachable {kwok.FAKE_NETWORK}")
        return found

    def _ctr(self, *args: str) -> str:
        result = subprocess.run(
            ["ctr", "--address", str(self.layout.containerd_socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise ClusterError(f"ctr {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _pod_netns_paths(self) -> list[str]:
        paths = []
        for container_id in self._ctr("containers", "ls", "-q").split():
            with contextlib.suppress(ClusterError, json.JSONDecodeError):
                info = json.loads(self._ctr("containers", "info", container_id))
                for ns in info.get("Spec", {}).get("linux", {}).get("namespaces", []):
                    if ns.get("type") == "network" and ns.get("path", "").startswith("/var/run/netns/cni-"):
                        paths.append(ns["path"])
        return sorted(set(paths))

    def _kill_containers(self) -> None:
        for task_id in self._ctr("tasks", "ls", "-q").split():
            with contextlib.suppress(ClusterError):
                self._ctr("tasks", "kill", "-a", "-s", "SIGKILL", task_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            remaining = [line for line in self._ctr("tasks", "ls").splitlines()[1:] if "RUNNING" in line]
            if not remaining:
                break
            time.sleep(0.1)
        for task_id in self._ctr("tasks", "ls", "-q").split():
            with contextlib.suppress(ClusterError):
                self._ctr("tasks", "delete", "-f", task_id)

    def _our_shim_pids(self) -> list[int]:
        """Containerd shims started for *our* containerd (their command line names our socket)."""
        marker = str(self.layout.containerd_socket).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if argv and argv[0].endswith(b"containerd-shim-runc-v2") and marker in argv:
                    pids.append(int(proc.name))
        return pids

    def _kill_our_shims(self) -> None:
        for pid in self._our_shim_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)

    @staticmethod
    def _remove_netns(path: str) -> None:
        name = Path(path).name
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        if Path(path).exists():
            subprocess.run(["umount", "-l", path], capture_output=True, check=False)
            Path(path).unlink(missing_ok=True)

    def _our_mounts(self) -> list[str]:
        prefixes = (str(self.layout.root) + "/", str(self.layout.containerd_state) + "/")
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point.startswith(prefixes):
                mounts.append(mount_point)
        return mounts

    def _unmount_ours(self) -> None:
        # Deepest first, so nested mounts (pod volumes inside kubelet dirs) go before their parents.
        for mount_point in sorted(set(self._our_mounts()), key=lambda m: m.count("/"), reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)
        left = self._our_mounts()
        if left:
            raise ClusterError(f"{len(left)} mount(s) could not be removed: {left[:5]}")

    def _cleanup_kube_proxy_rules(self) -> None:
        from localcluster.gobuild import bin_dir_for_current_sources

        kube_proxy = bin_dir_for_current_sources() / "kube-proxy"
        if kube_proxy.exists():
            network.remove_kube_proxy_rules(kube_proxy)


def _remove_kubepods_cgroups() -> None:
    """Remove the ``kubepods`` cgroup trees our kubelet created (deepest first)."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        top = controller / "kubepods"
        if not top.is_dir():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def ensure_running(progress: Progress | None = None, *, fake_nodes: int = 0) -> Path:
    """Start the embedded cluster if needed and return its admin kubeconfig (used by the suite's fixtures).

    ``fake_nodes``: at least this many kwok nodes (the scale selection's); more already running are kept.
    """
    cluster = EmbeddedCluster(progress=progress)
    wanted = max(fake_nodes, kwok.load_fake_nodes(cluster.layout)) if fake_nodes else None
    return cluster.up(fake_nodes=wanted)


@contextlib.contextmanager
def running_cluster(progress: Progress | None = None) -> Iterator[EmbeddedCluster]:
    """Start the cluster for the duration of a block and always take it down afterwards."""
    cluster = EmbeddedCluster(progress=progress)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
