"""Build the cluster's processes from the Go module proxy into the version-keyed cache.

One multi-call binary (``localcluster/multicall``) holds kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kube-proxy, kubectl, etcd and CoreDNS. The cache key hashes the wrapper
module's go.mod/go.sum/main.go, so changing a pinned version rebuilds and anything else reuses.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
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
    def link_components(staging: Path) -> None:
        for component in COMPONENTS:
            (staging / component).symlink_to("k8s")

    ldflags = _version_ldflags(KUBERNETES_VERSION)
    output = staging_dir(target) / "k8s"
    seconds = staged_go_build(
        target,
        ["build", "-trimpath", "-tags", "providerless", "-ldflags", ldflags, "-o", str(output), "."],
        what="the Kubernetes multi-call binary",
        output="k8s",
        env={"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
        cwd=MULTICALL_DIR,
        log=log,
        hint="check that the Go module proxy is reachable (GOPROXY) and the disk is not full.",
        finish=link_components,
    )
    return BuiltBinaries(target, seconds)


def staging_dir(target: Path) -> Path:
    """Where a build of ``target`` is made before it is renamed into place (``<target>.partial``)."""
    return target.with_name(target.name + ".partial")


def staged_go_build(
    target: Path,
    go_args: Sequence[str],
    *,
    what: str,
    output: str,
    env: Mapping[str, str],
    hint: str,
    cwd: Path | None = None,
    log: Path | None = None,
    finish: Callable[[Path], None] | None = None,
) -> float:
    """Run ``go *go_args`` into :func:`staging_dir`, then rename it to ``target``; returns the seconds taken.

    A build that fails or is interrupted leaves no ``target`` behind, only the staging directory the next
    build starts afresh, so a cache hit (``target`` exists) always means a complete build. ``output`` is the
    file the build must produce in the staging directory; ``env`` is added to this process's environment;
    ``cwd`` defaults to the staging directory; ``log`` to ``build.log`` in it; ``finish`` completes the
    staging directory before the rename. The caller holds ``target``'s lock (:func:`buildtools.locked`).
    """
    go = go_executable()
    if go is None:
        raise BuildError(GO_MISSING)
    staging = staging_dir(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = log or staging / "build.log"
    directory = cwd or staging
    cmd = [go, *go_args]
    started = time.monotonic()
    with log_path.open("wb") as out:
        result = subprocess.run(cmd, cwd=directory, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, **env))
    if result.returncode != 0 or not (staging / output).is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        shown_env = " ".join(f"{key}={value}" for key, value in env.items())
        raise BuildError(
            f"building {what} failed (exit {result.returncode}).\n"
            f"command: (cd {directory} && {shown_env} {shlex.join(cmd)})\nlast lines of {log_path}:\n  "
            + "\n  ".join(tail)
            + f"\nhint: {hint}"
        )
    if finish is not None:
        finish(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return time.monotonic() - started
