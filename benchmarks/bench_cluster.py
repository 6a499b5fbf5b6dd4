"""Benchmark the embedded cluster: cold build, warm ``up`` to node Ready, ``down``, and idle RSS; then kwok's cost.

Prints numbers; asserts nothing. Targets (issue #2): warm up <= 20 s, idle RSS <= 1.5 GiB,
cold build <= 30 min on 2 cores. ``--cold`` moves the binary cache aside first (slow!).
kwok (issue #15, ``up --fake-nodes N``, default N = 16; 0 skips it): its build (cold seconds, or "cached"),
the start time ``up --fake-nodes N`` adds to a plain ``up``, its idle RSS, and the seconds N more fake
nodes take from creation to Ready with kwok running.

    python benchmarks/bench_cluster.py [--cold] [--rounds 3] [--idle-seconds 30] [--fake-nodes 16]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

from localcluster import kwok, processes
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


def kwok_build() -> str:
    """kwok's build as this machine has it: built now (cold seconds) or already cached."""
    binary = kwok.ensure_kwok(print)
    return f"cached ({binary.path})" if binary.seconds == 0.0 else f"cold build {binary.seconds:.0f} s ({binary.path})"


def fake_nodes_ready_seconds(cluster: EmbeddedCluster, count: int) -> float:
    """Seconds from creating ``count`` more fake nodes to all Ready, with kwok running; they are deleted after.

    New names (not those ``up`` made), so kwok meets nodes it has never seen, as on a first ``up``.
    """
    from kubernetes import client, config

    names = kwok.fake_node_names(2 * count)[count:]
    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        core = client.CoreV1Api(api_client)
        started = time.monotonic()
        kwok.create_fake_nodes(core, names)
        kwok.wait_fake_nodes_ready(
            core, names, timeout=kwok.FAKE_NODES_READY_TIMEOUT, log=cluster.layout.logs / "kwok.log"
        )
        seconds = time.monotonic() - started
        kwok.delete_fake_nodes(core, keep=kwok.fake_node_names(count))
        return seconds
    finally:
        api_client.close()


def bench_kwok(cluster: EmbeddedCluster, count: int, rounds: int, idle_seconds: float, plain_up: float) -> None:
    print(f"kwok {kwok.KWOK_VERSION}: {kwok_build()}")
    ups, ready, rss = [], [], 0
    for _ in range(rounds):
        started = time.monotonic()
        cluster.up(fake_nodes=count)
        ups.append(time.monotonic() - started)
        ready.append(fake_nodes_ready_seconds(cluster, count))
        time.sleep(idle_seconds)
        rss = idle_rss(cluster).get("kwok", 0)
        problems = cluster.down()
        if problems:
            print(f"down reported problems: {problems}")
    extra = statistics.median(ups) - plain_up
    print(
        f"up --fake-nodes {count} to all nodes Ready: median {statistics.median(ups):.1f} s "
        f"({extra:+.1f} s over a plain up), all {[round(u, 1) for u in ups]}"
    )
    print(
        f"{count} more fake nodes, created to Ready (kwok running): median {statistics.median(ready):.2f} s, "
        f"all {[round(r, 2) for r in ready]}"
    )
    print(f"kwok idle RSS after {idle_seconds:.0f} s with {count} fake nodes (last round): {rss / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="measure a cold build of the binaries first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--fake-nodes", type=int, default=16, metavar="N", help="fake nodes for kwok's figures (0: skip kwok)"
    )
    args = parser.parse_args()
    kwok.check_fake_node_count(args.fake_nodes)

    if args.cold:
        print(f"cold build of the multi-call binary: {cold_build():.0f} s")
    cluster = EmbeddedCluster()
    cluster.down()
    cluster.up(fake_nodes=0)  # warm-up round: images imported, binaries cached
    cluster.down()
    ups, downs = [], []
    for _ in range(args.rounds):
        started = time.monotonic()
        cluster.up(fake_nodes=0)
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
    if args.fake_nodes:
        bench_kwok(cluster, args.fake_nodes, args.rounds, args.idle_seconds, statistics.median(ups))


if __name__ == "__main__":
    main()
