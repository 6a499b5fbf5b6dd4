"""Wall time of the acceptance run and of each area, and how late scaling events are observed.

    sudo .venv/bin/python benchmarks/bench_suites.py [--runs N] [--areas] [--watch-pods N]

* default: ``--runs`` full runs of ``geocube-acceptance run`` on the warm embedded default; prints each
  run's wall time, verdict and per-area time (sum of its checks' durations, from run.json). Target:
  full run <= 6 min.
* ``--areas``: also one ``geocube-acceptance run suites/<area>`` per area (each deploys its own stack).
* ``--watch-pods N``: creates and deletes N bare pods in a scratch namespace while a
  :class:`fixtures.podwatch.PodWatch` runs; prints how long after the API server accepted each
  creation/deletion the watch saw it (the observation delay of a scaling event; target <= 1 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
AREAS = ("autoscaling", "database", "messaging", "platform", "storage")


def run(args: list[str], run_id: str) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    command = [str(REPO / ".venv/bin/geocube-acceptance"), "run", *args, "-q", "--geocube-run-id", run_id]
    subprocess.run(command, cwd=REPO, capture_output=True, check=False)
    seconds = time.monotonic() - started
    record = REPO / "reports" / "runs" / run_id / "run.json"
    return seconds, json.loads(record.read_text()) if record.is_file() else {}


def per_area(record: dict[str, object]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for test in record.get("tests", []):  # type: ignore[union-attr]
        totals[str(test.get("area"))] += float(test.get("duration") or 0)
    return dict(totals)


def bench_runs(count: int, areas: bool) -> None:
    stamp = time.strftime("%H%M%S")
    for index in range(count):
        seconds, record = run([], f"bench-full-{stamp}-{index}")
        split = ", ".join(f"{a} {s:.0f}s" for a, s in sorted(per_area(record).items()))
        print(f"full run {index + 1}/{count}: {seconds:6.1f} s  verdict {record.get('verdict')}  ({split})", flush=True)
    if areas:
        for area in AREAS:
            seconds, record = run([f"suites/{area}"], f"bench-{area}-{stamp}")
            print(f"suites/{area:<12} {seconds:6.1f} s  verdict {record.get('verdict')}", flush=True)


def bench_watch(count: int, placement: dict[str, object] | None = None) -> dict[str, list[float]]:
    """Observation delays (seconds) of ``count`` pods' creation and deletion; ``placement``: more pod spec
    (e.g. a nodeSelector and toleration for fake nodes, where no container is run)."""
    from fixtures.cluster_client import connect
    from fixtures.podwatch import PodWatch
    from localcluster.cluster import EmbeddedCluster
    from localcluster.images import build_pause_image

    kube = connect(EmbeddedCluster().kubeconfig, None)
    namespace = f"bench-watch-{stamp()}"
    kube.core.create_namespace({"metadata": {"name": namespace}})
    pause = build_pause_image().ref
    created: dict[str, float] = {}
    deleted: dict[str, float] = {}
    try:
        with PodWatch(kube, namespace, "bench=watch") as watch:
            for i in range(count):
                name = f"p{i}"
                body = {
                    "metadata": {"name": name, "labels": {"bench": "watch"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": pause, "imagePullPolicy": "IfNotPresent"}],
                        **(placement or {}),
                    },
                }
                kube.core.create_namespaced_pod(namespace, body)
                created[name] = time.monotonic()
            watch.wait_until(lambda w: len(w.live()) == count, timeout=120, description=f"{count} pods seen")
            for name in list(created):
                kube.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
                deleted[name] = time.monotonic()
            watch.wait_until(lambda w: not w.live(), timeout=120, description="all pods seen deleting")
            events = list(watch.events)
    finally:
        kube.core.delete_namespace(namespace)
    seen_add = [next(e.at for e in events if e.pod == n and e.kind == "ADDED") - t for n, t in created.items()]
    seen_del = [
        next(e.at for e in events if e.pod == n and e.kind in ("DELETING", "DELETED")) - t for n, t in deleted.items()
    ]
    for label, delays in (("creation", seen_add), ("deletion", seen_del)):
        print(
            f"{label} observed after: median {statistics.median(delays) * 1000:.1f} ms, "
            f"max {max(delays) * 1000:.1f} ms over {len(delays)} pods",
            flush=True,
        )
    return {"creation": seen_add, "deletion": seen_del}


def stamp() -> str:
    return time.strftime("%H%M%S")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--areas", action="store_true")
    parser.add_argument("--watch-pods", type=int, default=0)
    options = parser.parse_args()
    if options.watch_pods:
        bench_watch(options.watch_pods)
    if options.runs:
        bench_runs(options.runs, options.areas)


if __name__ == "__main__":
    main()
