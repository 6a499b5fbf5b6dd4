"""One wait for a Geocube job, whichever client polls it (blocking or grpc.aio): states, end, and errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from geocube_stack.client import JobProgress
from geocube_stack.errors import StackError


def job(state: str, *logs: str) -> SimpleNamespace:
    return SimpleNamespace(state=state, logs=list(logs))


def test_the_states_seen_are_kept_once_each_in_order_until_done() -> None:
    progress = JobProgress("j1", timeout=60)
    for state in ("CREATED", "CREATED", "CONSOLIDATIONINPROGRESS", "CONSOLIDATIONDONE"):
        assert progress.observe(job(state)) is None
    result = progress.observe(job("DONE", "finished"))
    assert result is not None
    assert result.states_seen == ("CREATED", "CONSOLIDATIONINPROGRESS", "CONSOLIDATIONDONE", "DONE")
    assert (result.job_id, result.state, result.logs) == ("j1", "DONE", ("finished",))


def test_a_failure_state_ends_the_wait_with_the_states_and_logs() -> None:
    progress = JobProgress("j2", timeout=60)
    progress.observe(job("CREATED"))
    with pytest.raises(StackError, match=r"job j2 ended in CONSOLIDATIONFAILED .*'CREATED'.*\n  worker: disk full"):
        progress.observe(job("CONSOLIDATIONFAILED", "worker: disk full"))


def test_a_timeout_names_the_bound_the_states_and_the_last_logs() -> None:
    progress = JobProgress("j3", timeout=0)
    assert progress.expired()
    assert "(GetJob never answered)" in str(progress.timed_out())
    progress.observe(job("CONSOLIDATIONINPROGRESS", "tile 3/9"))
    message = str(progress.timed_out())
    assert "did not reach DONE within 0 s" in message and "CONSOLIDATIONINPROGRESS" in message and "tile 3/9" in message
