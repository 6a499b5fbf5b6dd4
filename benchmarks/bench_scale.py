"""The scale selection's cost: its duration, the watch delay with hundreds of pods, API server and kwok memory.

    sudo .venv/bin/python benchmarks/bench_scale.py [--watch-pods 256] [--no-run]

* runs ``geocube-acceptance run suites/autoscaling -m scale`` once on the warm embedded default (it starts 3 fake
  nodes if needed) and prints its wall time (target <= 3 min), its verdict and AS-SCALE-AT-MAX's evidence (peak,
  pods per update, times, the watch delay it measured from the API's 1 s timestamps);
* samples the resident memory of kube-apiserver and kwok every 0.5 s during it, and prints idle and peak;
* ``--watch-pods N`` (default 256): creates N pods on the fake nodes while a PodWatch runs, then deletes them,
  and prints how long after the API server accepted each change the watch saw it (milliseconds, exact).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_suites import bench_watch  # noqa: E402
from fixtures.embedded import SCALE_FAKE_NODES  # noqa: E402
from localcluster import kwok, processes  # noqa: E402
from localcluster.cluster import EmbeddedCluster, ensure_running  # noqa: E402
from suites.autoscaling.observed import CLIENT_QPS  # noqa: E402

WATCHED = ("kube-apiserver", "kwok")


class PeakMemory:
    """The highest RSS of the cluster's ``WATCHED`` processes, sampled in a thread."""

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.pids = {r.name: r.pid for r in processes.load(cluster.layout.pids) if r.name in WATCHED}
        self.idle = self.sample()
        self.peak = dict(self.idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, int]:
        return {name: processes.rss_bytes(pid) for name, pid in self.pids.items()}

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, rss in self.sample().items():
                self.peak[name] = max(self.peak.get(name, 0), rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run_scale_selection() -> tuple[float, dict[str, object]]:
    run_id = f"bench-scale-{time.strftime('%H%M%S')}"
    command = [str(REPO / ".venv/bin/geocube-acceptance"), "run", "suites/autoscaling", "-m", "scale", "-q"]
    started = time.monotonic()
    subprocess.run([*command, "--geocube-run-id", run_id], cwd=REPO, capture_output=True, check=False)
    seconds = time.monotonic() - started
    record = REPO / "reports" / "runs" / run_id / "run.json"
    return seconds, json.loads(record.read_text()) if record.is_file() else {}


def print_evidence(record: dict[str, object], seconds: float) -> None:
    """Each check's time (AS-SCALE-AT-MAX's evidence in full), the rest of the run, and the autoscaler's floor."""
    checks = 0.0
    for test in record.get("tests", []):  # type: ignore[union-attr]
        duration = float(test.get("duration") or 0)
        checks += duration
        print(f"{test.get('requirement_id')}: {test.get('status')} in {duration:.1f} s")
        if test.get("requirement_id") == "AS-SCALE-AT-MAX":
            for key, value in (test.get("evidence") or {}).items():
                print(f"  {key}: {json.dumps(value)}")
    print(f"the rest (start-up, deploy, teardown, report): {seconds - checks:.1f} s")
    # Geocube's autoscaler keeps client-go's 5 requests/s: 2 requests a pod created, 1 a pod deleted.
    up, down = 256 // 16 * (2 * 16 / CLIENT_QPS), 256 / CLIENT_QPS
    print(f"floor of AS-SCALE-AT-MAX at 5 requests/s: {up:.0f} s up + {down:.0f} s down = {up + down:.0f} s")


def mib(rss: int) -> str:
    return f"{rss / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watch-pods", type=int, default=256)
    parser.add_argument("--no-run", action="store_true", help="skip the scale selection (only the watch delay)")
    options = parser.parse_args()
    ensure_running(print, fake_nodes=SCALE_FAKE_NODES)
    cluster = EmbeddedCluster()
    if not options.no_run:
        with PeakMemory(cluster) as memory:
            seconds, record = run_scale_selection()
        print(f"scale selection: {seconds:.1f} s (target <= 180 s), verdict {record.get('verdict')}", flush=True)
        print_evidence(record, seconds)
        for name in WATCHED:
            print(f"{name} RSS: idle {mib(memory.idle.get(name, 0))}, peak {mib(memory.peak.get(name, 0))}")
    if options.watch_pods:
        placement = {"nodeSelector": kwok.FAKE_NODE_SELECTOR, "tolerations": [kwok.FAKE_NODE_TOLERATION]}
        print(f"watch delay with {options.watch_pods} pods on the fake nodes:", flush=True)
        bench_watch(options.watch_pods, placement)  # prints median and max of each


if __name__ == "__main__":
    main()
