"""Build and deploy times of the reference stack (numbers printed, never asserted).

    sudo .venv/bin/python benchmarks/bench_stack.py [--cold-go] [--cold-images] [--deploy PAIR ...] [--repeat N]

* ``--cold-go``: ``go install`` of every binary with an empty GOCACHE and a fresh binary cache (the Go
  module cache stays warm: downloads are not what is measured). Otherwise the cached binaries are used
  and the recorded cold build times are printed.
* ``--cold-images``: every image built into a fresh layer/image cache (the shared Debian base layer
  included), then the same calls again (warm: cache hits).
* ``--deploy``: for each ``messaging-storage`` pair (default ``pgqueue-local pubsub-local``), import the
  images into the embedded cluster, then ``--repeat`` times, through the suites' own deploy path
  (``fixtures.stack``): fresh namespace, first apply → every workload ready (the issue's target is
  ≤ 90 s warm), delete the namespace.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geocube_stack.gobuild import StackBinaries, build_stack_binaries
from geocube_stack.images import build_stack_images


def line(label: str, seconds: float, extra: str = "") -> None:
    print(f"{label:<52} {seconds:8.1f} s  {extra}", flush=True)


def bench_go(cold: bool) -> StackBinaries:
    if not cold:
        binaries = build_stack_binaries()
        for b in binaries.all():
            line(f"go install {b.name} (recorded cold build)", b.cold_seconds, "cached now")
        return binaries
    scratch = Path(tempfile.mkdtemp(prefix="bench-stack-go-"))
    saved = os.environ.get("GOCACHE")
    os.environ["GOCACHE"] = str(scratch / "gocache")
    try:
        started = time.monotonic()
        binaries = build_stack_binaries(cache=scratch / "cache")
        for b in binaries.all():
            line(
                f"cold go install {b.name} (cgo={b.cgo})",
                b.seconds,
                "(server+consolidater share one run)" if b.cgo else "",
            )
        line("cold go builds, total", time.monotonic() - started)
    finally:
        if saved is None:
            os.environ.pop("GOCACHE", None)
        else:
            os.environ["GOCACHE"] = saved
    # The scratch binaries are deleted: later steps use the real cache's.
    shutil.rmtree(scratch, ignore_errors=True)
    return build_stack_binaries()


def bench_images(binaries: StackBinaries, cold: bool) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="bench-stack-images-")) if cold else None
    try:
        for label in ("cold", "warm") if cold else ("current cache",):
            started = time.monotonic()
            images = build_stack_images(binaries=binaries, cache=scratch)
            for key, image in images.images.items():
                line(f"{label} image {key}", image.seconds, f"{image.ref} {image.image.size / 1e6:.0f} MB")
            line(f"{label} images, total", time.monotonic() - started)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def bench_deploy(pairs: list[str], repeat: int) -> None:
    """The suites' own deploy path (fixtures.stack): render, apply, wait until ready, delete the namespace."""
    from fixtures.cluster_client import connect
    from fixtures.config import resolve
    from fixtures.embedded import build_and_push_images, embedded_kubeconfig, remove_storage_dir
    from fixtures.namespace import DisposableNamespace, namespace_name
    from fixtures.registry_access import run_pull_secret
    from fixtures.stack import StackChoice, StackDeployer, render_stack, stack_parameters

    kube = connect(embedded_kubeconfig(lambda message: print(f"[cluster] {message}", flush=True)), None)
    started = time.monotonic()
    images = build_and_push_images(lambda message: None)
    line("build (cached) and push images", time.monotonic() - started)
    scratch = Path(tempfile.mkdtemp(prefix="bench-stack-deploy-"))
    try:
        for pair in pairs:
            messaging, storage = pair.split("-", 1)
            settings = resolve(
                {"geocube_messaging": messaging, "geocube_storage": storage, "geocube_run_id": "bench"},
                {},
                base_dir=scratch,
            )
            for attempt in range(1, repeat + 1):
                name = namespace_name("bench")
                namespace = DisposableNamespace(kube, name, run_id="bench", ttl=3600, delete_timeout=300)
                choice = StackChoice.of(settings)
                params = stack_parameters(settings, images, choice, namespace=name)
                rendered = render_stack(settings, name, params, choice)
                pull = run_pull_secret(settings, choice, kube, name)
                if pull is not None:
                    rendered = pull.beside(rendered)
                namespace.create()
                try:
                    started = time.monotonic()
                    stack = StackDeployer(kube, settings).deploy(name, rendered, params, diagnostics_dir=scratch)
                    line(f"{pair} #{attempt}: first apply → all ready", time.monotonic() - started, str(stack.startup))
                finally:
                    started = time.monotonic()
                    namespace.delete()
                    remove_storage_dir(name)
                    line(f"{pair} #{attempt}: namespace deletion", time.monotonic() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        kube.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-go", action="store_true", help="time go install with an empty GOCACHE")
    parser.add_argument("--cold-images", action="store_true", help="time image builds into a fresh cache")
    parser.add_argument("--deploy", nargs="*", metavar="PAIR", help="time deployments (e.g. pgqueue-local)")
    parser.add_argument("--repeat", type=int, default=2, help="deployments per pair (default 2)")
    args = parser.parse_args()
    binaries = bench_go(args.cold_go)
    bench_images(binaries, args.cold_images)
    if args.deploy is not None:
        bench_deploy(args.deploy or ["pgqueue-local", "pubsub-local"], args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
