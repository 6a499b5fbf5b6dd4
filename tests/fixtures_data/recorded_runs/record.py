"""Turn a real run's ``run.json`` into a recorded run of this folder (see README.md).

    .venv/bin/python tests/fixtures_data/recorded_runs/record.py NAME RUN_JSON [--flaky REQUIREMENT-ID --run-id ID]

The record is kept as the suite wrote it, except that:
- ``history`` is emptied (the self-tests replay the recorded runs through the history themselves);
- a secret is planted, unmasked, where a framework bug could leak one: the ``POSTGRES_PASSWORD``
  parameter, a ``--set POSTGRES_PASSWORD=…`` argument and, in every failure's traceback, a DSN;
  no rendered format may contain it;
- ``--flaky ID`` gives that (passed) check a failed first attempt, the way pytest-rerunfailures records
  a check that passed only on rerun: a real flaky check cannot be produced on demand. A record derived
  from another needs its own ``--run-id`` (the history never compares a run with itself).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LEAKED = "hunter2-do-not-leak"
FLAKY_MESSAGE = "AssertionError: the consolidations message was not delivered within 30 s (simulated first attempt)"


def plant_secret(record: dict[str, Any]) -> None:
    record["inventory"].setdefault("parameters", {})["POSTGRES_PASSWORD"] = LEAKED
    record["command"] = [*record["command"], "--set", f"POSTGRES_PASSWORD={LEAKED}"]
    for test in record["tests"]:
        if test.get("longrepr"):
            test["longrepr"] += f"\nconnecting to postgresql://geocube:{LEAKED}@postgis.geocube-e2e.svc:5432/geocube"


def make_flaky(record: dict[str, Any], requirement_id: str) -> None:
    test = next(t for t in record["tests"] if t.get("requirement_id") == requirement_id)
    if test["status"] != "passed":
        raise SystemExit(f"{requirement_id} did not pass in this run ({test['status']}): pick a passed check")
    failed = {"status": "failed", "phases": {"setup": "passed", "call": "failed", "teardown": "passed"},
              "duration": test["duration"], "message": FLAKY_MESSAGE}  # fmt: skip
    test["attempts"] = [failed, *test["attempts"]]
    test["status"] = "flaky"
    test["message"] = f"flaky: failed 1 of 2 attempts, passed on attempt 2; first failure: {FLAKY_MESSAGE}"
    test["longrepr"] = f"E   {FLAKY_MESSAGE}"
    record["exit_status"] = 1  # FAIL: a check that passed only on rerun


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="file name without .json, e.g. 01-pass")
    parser.add_argument("run_json", type=Path)
    parser.add_argument("--flaky", metavar="REQUIREMENT-ID")
    parser.add_argument("--run-id", metavar="ID", help="the record's run id (default: the run's own)")
    args = parser.parse_args(argv)
    record = json.loads(args.run_json.read_text(encoding="utf-8"))
    record["history"] = None
    if args.run_id:
        record["command"] = [args.run_id if arg == record["run_id"] else arg for arg in record["command"]]
        record["run_id"] = args.run_id
    if args.flaky:
        make_flaky(record, args.flaky)
    plant_secret(record)
    for derived in ("verdict", "verdict_label", "verdict_reasons", "summary"):
        record.pop(derived, None)  # recomputed on load; stale copies would only mislead a reader
    (HERE / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
