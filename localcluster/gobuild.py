"""Build the cluster's processes from the Go module proxy into the version-keyed cache.

One multi-call binary (``localcluster/multicall``) holds kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kube-proxy, kubectl, etcd and CoreDNS. The cache key hashes the wrapper
module's go.mod/go.sum/main.go, so changing a pinned version rebuilds and anything else reuses.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localcluster.buildtools import GO_MISSING, go_executable, locked
from localcluster.errors import BuildError
from localcluster.paths import cache_dir

KUBERNETES_VERSION = "v1.34.4"
MULTICALL_DIR = Path(__file__).resolve().parent / "multicall"
COMPONENTS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "etcd",
    "coredns",
)


@dataclass(frozen=True)
class BuiltBinaries:
    """Where the built multi-call binary and its per-component symlinks live."""

    bin_dir: Path
    seconds: float  # 0.0 on a cache hit

    def path(self, component: str) -> Path:
        return self.bin_dir / component


def _source_key() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode())
        digest.update((MULTICALL_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    # Both packages carry a version: component-base for servers, client-go for kubectl's client side.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def bin_dir_for_current_sources() -> Path:
    return cache_dir() / "bin" / f"k8s-{KUBERNETES_VERSION}-{_source_key()}"


def ensure_binaries(log: Path | None = None) -> BuiltBinaries:
    """Return the cached binaries, building them first if this source key has none."""
    target = bin_dir_for_current_sources()
    if (target / "k8s").is_file():
        return BuiltBinaries(target, 0.0)
    with locked(target):
        if (target / "k8s").is_file():  # built by another process while this one waited
            return BuiltBinaries(target, 0.0)
        return _build(target, log)


def _build(target: Path, log: Path | None) -> BuiltBinaries:
    go = go_executable()
    if go is None:
        raise BuildError(GO_MISSING)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = log or staging / "build.log"
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    cmd = [
        go,
        "build",
        "-trimpath",
        "-tags",
        "providerless",
        "-ldflags",
        _version_ldflags(KUBERNETES_VERSION),
        "-o",
        str(staging / "k8s"),
        ".",
    ]
    started = time.monotonic()
    with log_path.open("wb") as out:
        result = subprocess.run(cmd, cwd=MULTICALL_DIR, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(
            f"building the Kubernetes multi-call binary failed (exit {result.returncode}).\n"
            f"command: (cd {MULTICALL_DIR} && {' '.join(cmd)})\nlast lines of {log_path}:\n  "
            + "\n  ".join(tail)
            + "\nhint: check that the Go module proxy is reachable (GOPROXY) and the disk is not full."
        )
    for component in COMPONENTS:
        (staging / component).symlink_to("k8s")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return BuiltBinaries(target, time.monotonic() - started)
