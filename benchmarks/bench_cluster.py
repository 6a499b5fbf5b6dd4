"""Benchmark the embedded cluster: cold build, warm ``up`` to node Ready, ``down``, and idle RSS.

Prints numbers; asserts nothing. Targets (issue #2): warm up <= 20 s, idle RSS <= 1.5 GiB,
cold build <= 30 min on 2 cores. ``--cold`` moves the binary cache aside first (slow!).

    python benchmarks/bench_cluster.py [--cold] [--rounds 3] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

from localcluster import processes
from localcluster.cluster import EmbeddedCluster
from localcluster.gobuild import bin_dir_for_current_sources, ensure_binaries


def cold_build() -> float:
    target = bin_dir_for_current_sources()
    aside = target.with_name(target.name + ".bench-aside")
    if target.exists():
        target.rename(aside)
    try:
        return ensure_binaries().seconds
    finally:
        if aside.exists():
            shutil.rmtree(target, ignore_errors=True)
            aside.rename(target)


def idle_rss(cluster: EmbeddedCluster) -> dict[str, int]:
    by_name = {r.name: processes.rss_bytes(r.pid) for r in processes.load(cluster.layout.pids)}
    return dict(sorted(by_name.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="measure a cold build of the binaries first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    if args.cold:
        print(f"cold build of the multi-call binary: {cold_build():.0f} s")
    cluster = EmbeddedCluster()
    cluster.down()
    cluster.up()  # warm-up round: images imported, binaries cached
    cluster.down()
    ups, downs = [], []
    for _ in range(args.rounds):
        started = time.monotonic()
        cluster.up()
        ups.append(time.monotonic() - started)
        time.sleep(args.idle_seconds)
        rss = idle_rss(cluster)
        started = time.monotonic()
        problems = cluster.down()
        downs.append(time.monotonic() - started)
        if problems:
            print(f"down reported problems: {problems}")
    print(f"warm up to node Ready: median {statistics.median(ups):.1f} s, all {[round(u, 1) for u in ups]}")
    print(f"down: median {statistics.median(downs):.1f} s, all {[round(d, 1) for d in downs]}")
    total = sum(rss.values())
    print(f"idle RSS after {args.idle_seconds:.0f} s (last round): total {total / 2**20:.0f} MiB")
    for name, value in rss.items():
        print(f"  {name:<24} {value / 2**20:7.0f} MiB")


if __name__ == "__main__":
    main()
