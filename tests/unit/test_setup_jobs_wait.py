"""A worker crash-looping while the stack's set-up Jobs run is waiting for them, within a bound."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fixtures.classify import Failure
from fixtures.waits import _waiting_for_jobs

CRASH = Failure("CrashLoopBackOff", "Pod", "consolidater-x", "the container keeps exiting", "consolidater", "previous")
DONE = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def pod(restarts: int, finished: str, owner: str = "ReplicationController") -> dict[str, Any]:
    status = {"name": "consolidater", "restartCount": restarts, "lastState": {"terminated": {"finishedAt": finished}}}
    return {"metadata": {"ownerReferences": [{"kind": owner}]}, "status": {"containerStatuses": [status]}}


def test_while_the_jobs_run_a_crash_loop_waits_up_to_the_bound() -> None:
    assert _waiting_for_jobs(pod(3, "2026-11-30T11:59:00Z"), CRASH, None)
    assert _waiting_for_jobs(pod(4, "2026-11-30T11:59:00Z"), CRASH, None)
    assert not _waiting_for_jobs(pod(5, "2026-11-30T11:59:00Z"), CRASH, None)


def test_once_the_jobs_are_done_only_a_later_exit_counts() -> None:
    assert _waiting_for_jobs(pod(3, "2026-11-30T11:59:59Z"), CRASH, DONE)  # exited before the subscription existed
    assert not _waiting_for_jobs(pod(4, "2026-11-30T12:00:05Z"), CRASH, DONE)


def test_a_jobs_own_pod_and_other_failures_are_never_excused() -> None:
    assert not _waiting_for_jobs(pod(3, "2026-11-30T11:59:00Z", owner="Job"), CRASH, None)
    pull = Failure("ImagePullBackOff", "Pod", "consolidater-x", "the image cannot be pulled", "consolidater")
    assert not _waiting_for_jobs(pod(0, "2026-11-30T11:59:00Z"), pull, None)
