"""Seconds from the start of a check to its named failure, for every fault of tests/faults (numbers, never asserted).

    sudo .venv/bin/python benchmarks/bench_faults.py [--fault NAME ...]

For each fault (the self-tests' catalogue, ``tests/faults/test_faults.py``): the reference manifests with the fault
injected, the fault's area run on the embedded default in a separate process (as the self-test does), then, from the
run's ``run.json``, each expected check's status, its duration (setup + call: from the check's start to its
verdict) and whether its message names the cause. Target (#13): at most 30 s after the system shows the cause.
The last line is the total wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    from tests.faults.test_faults import FAULTS, run_area
    from tests.suite_runs import outcomes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fault", action="append", metavar="NAME", help="only these faults (repeatable)")
    args = parser.parse_args()
    chosen = [f for f in FAULTS if not args.fault or f.name in args.fault]
    unknown = sorted(set(args.fault or ()) - {f.name for f in FAULTS})
    if unknown:
        print(f"unknown fault(s) {unknown}; known: {[f.name for f in FAULTS]}", file=sys.stderr)
        return 4
    print(f"{'fault':<36} {'check':<22} {'status':<10} {'to failure':>10}  cause named")
    started = time.monotonic()
    for fault in chosen:
        with tempfile.TemporaryDirectory(prefix="bench-faults-") as work:
            t0 = time.monotonic()
            record = run_area(fault, Path(work))
            area_seconds = time.monotonic() - t0
        checks = outcomes(record)
        for rid, words in fault.expected.items():
            check = checks.get(rid, {})
            text = f"{check.get('message') or ''}\n{check.get('longrepr') or ''}"
            seconds = float(check.get("duration") or 0.0)
            named = "yes" if words in text else f"NO ({words!r} missing)"
            print(f"{fault.name:<36} {rid:<22} {check.get('status', 'absent'):<10} {seconds:>9.1f}s  {named}")
        print(f"{fault.name:<36} {'(area run, wall)':<22} {'':<10} {area_seconds:>9.1f}s")
    print(f"{'all faults':<36} {'(wall)':<22} {'':<10} {time.monotonic() - started:>9.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
