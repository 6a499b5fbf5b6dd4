"""Checks run before ``up`` starts anything: each failure names the problem and the fix."""

from __future__ import annotations

import errno
import os
import platform
import shutil
import socket
from pathlib import Path

from localcluster.errors import PreflightError
from localcluster.layout import PORTS

# command -> Debian package that provides it
REQUIRED_COMMANDS = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "mount": "mount",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
CGROUP_V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids")


def check_platform() -> list[str]:
    problems = []
    if platform.system() != "Linux":
        problems.append(
            f"the embedded cluster runs on Linux only (this is {platform.system()}); "
            "pass --kubeconfig to use an existing cluster instead"
        )
    elif os.geteuid() != 0:
        problems.append(
            "the embedded cluster needs root (it creates a bridge, iptables rules and mounts); "
            "run as root (sudo -E ...) or pass --kubeconfig to use an existing cluster"
        )
    return problems


def check_commands() -> list[str]:
    problems = []
    missing: dict[str, list[str]] = {}
    for command, package in REQUIRED_COMMANDS.items():
        if shutil.which(command) is None:
            missing.setdefault(package, []).append(command)
    for package, commands in sorted(missing.items()):
        problems.append(f"missing command(s) {', '.join(commands)}: apt-get install -y {package}")
    absent = [p for p in CNI_PLUGINS if not (Path("/usr/lib/cni") / p).exists()]
    if absent:
        problems.append(
            f"missing CNI plugin(s) {', '.join(absent)} in /usr/lib/cni: apt-get install -y containernetworking-plugins"
        )
    return problems


def _cgroup_v1_controllers() -> set[str]:
    mounted: set[str] = set()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup":
            mounted.update(opt for opt in fields[3].split(",") if opt in CGROUP_V1_CONTROLLERS)
        if fields[2] == "cgroup2" and fields[1] == "/sys/fs/cgroup":
            mounted.update(Path("/sys/fs/cgroup/cgroup.controllers").read_text().split())
    return mounted


def check_kernel() -> list[str]:
    problems = []
    missing = [c for c in CGROUP_V1_CONTROLLERS if c not in _cgroup_v1_controllers() and c != "cpuacct"]
    if missing:
        problems.append(
            f"cgroup controller(s) {', '.join(missing)} are not mounted; the kubelet needs them "
            "(mount the cgroup hierarchy, e.g. boot with systemd or mount them under /sys/fs/cgroup)"
        )
    if not Path("/dev/kmsg").exists():
        problems.append("/dev/kmsg is missing; the kubelet's OOM watcher needs it (mknod /dev/kmsg c 1 11)")
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        if not (Path("/proc/sys") / key).exists():
            problems.append(
                f"kernel setting {key.replace('/', '.')} is missing: the kernel needs "
                "bridge netfilter (br_netfilter) built in or loaded"
            )
    if not Path("/proc/filesystems").read_text().count("overlay"):
        problems.append("the overlay filesystem is not available; containerd's overlayfs snapshotter needs it")
    return problems


def check_ports() -> list[str]:
    """Every port the cluster binds must be free (call only when the cluster is not running)."""
    problems = []
    for component, address, port in PORTS:
        family = socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    problems.append(
                        f"port {address}:{port} needed by {component} is already in use; "
                        f"find the owner with `ss -ltnp 'sport = :{port}'` and stop it"
                    )
                elif exc.errno != errno.EADDRNOTAVAIL:  # the bridge address does not exist yet: fine
                    problems.append(f"cannot bind {address}:{port} for {component}: {exc}")
    return problems


def check_disk(path: Path, min_free_gib: float = 4.0) -> list[str]:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free / 2**30
    if free < min_free_gib:
        return [
            f"only {free:.1f} GiB free under {path}; the cluster and its images need {min_free_gib} GiB "
            "(free space or set GEOCUBE_ACCEPTANCE_STATE / GEOCUBE_ACCEPTANCE_CACHE elsewhere)"
        ]
    return []


def run_preflight(state_root: Path, check_ports_free: bool = True) -> None:
    """Raise one PreflightError listing every problem found, before anything starts."""
    problems = check_platform()
    if not problems:  # the rest is meaningless without Linux and root
        problems += check_commands() + check_kernel() + check_disk(state_root)
        if check_ports_free:
            problems += check_ports()
    if problems:
        raise PreflightError("the embedded cluster cannot start on this machine:\n  - " + "\n  - ".join(problems))
