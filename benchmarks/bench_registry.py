"""Cold and warm ``cluster up`` plus the first deploy, and the registry's idle memory (issue #14).

Prints numbers; asserts nothing. Each round stops the cluster (``--cold``: ``down --purge``, so
containerd's content and the registry's storage are empty: every image is pushed and pulled, or imported,
again), times ``cluster up``, then runs ``bench_stack.py --deploy pgqueue-local --repeat 1`` of a
checkout: this one (images pushed into the registry and pulled by the kubelet), or ``--checkout DIR``, e.g.
a worktree of the commit before the registry, whose images are imported into containerd — the before.

    sudo .venv/bin/python benchmarks/bench_registry.py [--cold] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localcluster import processes
from localcluster.cluster import EmbeddedCluster

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "localcluster"]


def timed(argv: list[str], cwd: Path = REPO) -> tuple[float, str]:
    """Seconds and output of one command (it must succeed)."""
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return time.monotonic() - started, result.stdout


def registry_rss_mib() -> float:
    """Resident memory of the registry process (the cluster's process record names it)."""
    records = [r for r in processes.load(EmbeddedCluster().layout.pids) if r.name == "registry"]
    return processes.rss_bytes(records[0].pid) / 2**20 if records else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="down --purge first (empty containerd and registry)")
    parser.add_argument("--checkout", type=Path, default=REPO, help="whose bench_stack.py deploys (default: this)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="wait before reading the registry's RSS")
    args = parser.parse_args()
    label = "cold" if args.cold else "warm"
    timed([*CLI, "down", *(["--purge"] if args.cold else [])])
    up, _ = timed([*CLI, "up"])
    print(f"{label} cluster up: {up:.1f} s", flush=True)
    time.sleep(args.idle_seconds)
    print(f"registry idle RSS: {registry_rss_mib():.1f} MiB", flush=True)
    bench = args.checkout / "benchmarks" / "bench_stack.py"
    _, output = timed([sys.executable, str(bench), "--deploy", "pgqueue-local", "--repeat", "1"], cwd=args.checkout)
    for text in output.splitlines():
        if "images" in text or "first apply" in text:
            print(f"{label} ({args.checkout.name}): {text.strip()}", flush=True)
    print(f"registry RSS after the deploy: {registry_rss_mib():.1f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
