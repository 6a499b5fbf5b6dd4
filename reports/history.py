"""Run history: one JSON line per acceptance run in ``<report base dir>/history.jsonl``.

Each run is compared with the previous *comparable* run — same cluster, same profile, same selection of
requirements — (newly failing, fixed, still failing, flaky, new and removed checks), and every check's
duration is followed over the last comparable runs. Runs of another cluster, profile or selection, and
lines written before runs carried a key, are never compared with it.
"""

from __future__ import annotations

import fcntl
import json
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from reports.model import FAILING, HistoryDiff, RunRecord, Status

HISTORY_FILE = "history.jsonl"
TREND_RUNS = 10
"""How many runs (this one included) the duration trend covers."""
SLOWER_RATIO = 1.5
SLOWER_MIN_SECONDS = 1.0
"""A check is "slower" when it took 1.5x its previous median and at least a second more."""


def comparison_key(record: RunRecord) -> dict[str, str]:
    """What two runs must share to be compared: the cluster, the profile and the selected requirements."""
    cluster = record.inventory.get("cluster")
    if isinstance(cluster, dict):
        cluster_text = f"{cluster.get('server')} (context {cluster.get('context')})"
    else:
        cluster_text = "unknown"
    selected = sorted(record.selected_requirements())
    applicable = sorted(r.id for r in record.catalogue or [] if r.applicable)
    selection = "all applicable requirements" if selected and selected == applicable else ",".join(selected)
    return {"cluster": cluster_text, "profile": str(record.inventory.get("profile")), "selection": selection}


def entry_for(record: RunRecord) -> dict[str, Any]:
    """The history line for a run: its key, verdict and each check's status and duration."""
    return {
        "run_id": record.run_id,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "verdict": record.verdict.value,
        "profile": record.inventory.get("profile"),
        "key": comparison_key(record),
        "tests": {t.nodeid: {"status": t.status.value, "duration": t.duration} for t in record.tests},
    }


def read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """All readable entries, oldest first, and the number of corrupt lines skipped."""
    entries: list[dict[str, Any]] = []
    corrupt = 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            corrupt += 1
            continue
        if isinstance(entry, dict) and isinstance(entry.get("tests"), dict) and "run_id" in entry:
            entries.append(entry)
        else:
            corrupt += 1
    return entries, corrupt


def compare(previous: list[dict[str, Any]], record: RunRecord) -> HistoryDiff:
    """What changed between the last comparable run of ``previous`` (not this one) and ``record``."""
    key = comparison_key(record)
    others = [e for e in previous if e.get("run_id") != record.run_id]
    earlier = [e for e in others if e.get("key") == key]
    diff = HistoryDiff(flaky=sorted(t.nodeid for t in record.tests if t.status is Status.FLAKY))
    diff.key = key
    diff.incomparable_runs = len(others) - len(earlier)
    failing_now = {t.nodeid for t in record.tests if t.status in FAILING and t.status is not Status.FLAKY}
    current = {t.nodeid: t for t in record.tests}
    if earlier:
        last = earlier[-1]
        diff.previous_run_id = str(last["run_id"])
        diff.previous_verdict = last.get("verdict")
        before: dict[str, Any] = last["tests"]
        failing_before = {
            nodeid
            for nodeid, data in before.items()
            if isinstance(data, dict) and data.get("status") in {s.value for s in FAILING}
        }
        diff.newly_failing = sorted(failing_now - failing_before)
        diff.still_failing = sorted(failing_now & failing_before)
        diff.fixed = sorted(
            nodeid for nodeid in failing_before if nodeid in current and current[nodeid].status is Status.PASSED
        )
        diff.new_tests = sorted(set(current) - set(before))
        diff.removed_tests = sorted(set(before) - set(current))
    else:
        diff.newly_failing = sorted(failing_now)

    window = earlier[-(TREND_RUNS - 1) :]
    for nodeid, test in current.items():
        if test.status in (Status.UNRUN, Status.DESELECTED):
            continue
        series = [
            float(e["tests"][nodeid]["duration"])
            for e in window
            if isinstance(e["tests"].get(nodeid), dict) and _ran(e["tests"][nodeid])
        ]
        diff.durations[nodeid] = [*series, test.duration]
        if series:
            median = statistics.median(series)
            if test.duration >= median * SLOWER_RATIO and test.duration - median >= SLOWER_MIN_SECONDS:
                diff.slower.append(nodeid)
    diff.slower.sort()
    return diff


def _ran(data: dict[str, Any]) -> bool:
    return data.get("status") not in (Status.UNRUN.value, Status.DESELECTED.value) and isinstance(
        data.get("duration"), int | float
    )


@contextmanager
def _locked(path: Path) -> Iterator[TextIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        # Two runs sharing a report directory must not interleave their lines.
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update(base_dir: Path, record: RunRecord) -> HistoryDiff:
    """Compare ``record`` with the previous run in ``base_dir``'s history, then append it."""
    path = base_dir / HISTORY_FILE
    with _locked(path) as handle:
        previous, _corrupt = read(path)
        diff = compare(previous, record)
        handle.seek(0, 2)
        handle.write(json.dumps(entry_for(record), sort_keys=True) + "\n")
        handle.flush()
    return diff
