"""A pgqueue backlog the autoscaler counts and no consolidater can consume.

1. Insert the jobs with ``run_after`` in the future (invisible to workers and to the backlog count).
2. Lock them ``FOR KEY SHARE`` in a transaction held open (workers' ``FOR UPDATE SKIP LOCKED`` skips them).
3. From a second connection make them due (``UPDATE run_after``: a non-key update is compatible with
   KEY SHARE), so the autoscaler's ``count(*)`` sees them.
Release deletes them inside the locking transaction. ``__exit__`` always deletes them. The deletion is
journaled before the insert (``fixtures.journal``): after a SIGKILL, the next run or ``gc`` ends the
lock's session and deletes the rows, found by a marker of this backlog's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from types import TracebackType
from typing import Any

import psycopg

from fixtures.access import APPLICATION_NAME, Database
from fixtures.journal import DropQueueRows
from fixtures.stack import Stack

MARKER = b"geocube-acceptance backlog probe (not a Geocube message)"


class HeldBacklog:
    """``with HeldBacklog(stack, db, queue, n) as b: t = b.make_due(); ...; t2 = b.release()``."""

    def __init__(self, stack: Stack, database: Database, queue: str, size: int) -> None:
        self.stack, self.database, self.queue, self.size = stack, database, queue, size
        self.ids: list[int] = []
        self._lock: psycopg.Connection[Any] | None = None
        token = secrets.token_hex(4)
        self.marker = MARKER + b" " + token.encode()
        self.application = f"{APPLICATION_NAME}-backlog-{token}"
        self._undo = contextlib.ExitStack()

    def __enter__(self) -> HeldBacklog:
        self._undo.enter_context(
            self.stack.changes(DropQueueRows(self.queue, self.marker.hex(), application=self.application))
        )
        try:
            self._insert_and_lock()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _insert_and_lock(self) -> None:
        with self.database.connect() as conn:
            rows = conn.execute(
                "INSERT INTO pgq_jobs (queue_name, data, run_after, retry_waits) "
                "SELECT %s, %s, now() + interval '1 day', '{}' FROM generate_series(1, %s) RETURNING id",
                (self.queue, self.marker, self.size),
            ).fetchall()
            conn.commit()
        self.ids = [int(r[0]) for r in rows]
        self._lock = self.database.connect(application=self.application)
        locked = self._lock.execute("SELECT id FROM pgq_jobs WHERE id = ANY(%s) FOR KEY SHARE", (self.ids,)).fetchall()
        if len(locked) != self.size:
            raise AssertionError(f"locked {len(locked)} of the {self.size} backlog jobs just inserted")

    def make_due(self) -> float:
        """Make the jobs count as backlog; returns the monotonic time they became visible."""
        with self.database.connect() as conn:
            conn.execute("UPDATE pgq_jobs SET run_after = now() - interval '1 second' WHERE id = ANY(%s)", (self.ids,))
            conn.commit()
        return time.monotonic()

    def release(self) -> float:
        """Delete the jobs (the backlog drops to zero at commit); returns when that happened."""
        assert self._lock is not None
        self._lock.execute("DELETE FROM pgq_jobs WHERE id = ANY(%s)", (self.ids,))
        self._lock.commit()
        self.ids = []
        return time.monotonic()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._lock is not None:
            self._lock.rollback()
            self._lock.close()
        self._undo.close()  # deletes the rows (the journaled undo)


# The autoscaler's own count (pgqueue.Consumer.Backlog): due jobs of the queue that never ran.
_BACKLOG = "SELECT count(*) FROM pgq_jobs WHERE queue_name = %s AND run_after < now() AND ran_at IS NULL"


async def sample_backlog(
    conn: psycopg.AsyncConnection[Any], queue: str, stop: asyncio.Event, *, interval: float = 0.5
) -> list[tuple[float, int]]:
    """(monotonic time, backlog) as the autoscaler counts it, every ``interval`` until ``stop`` (and once after)."""
    points: list[tuple[float, int]] = []
    while True:
        done = stop.is_set()
        cursor = await conn.execute(_BACKLOG, (queue,))
        row = await cursor.fetchone()
        points.append((time.monotonic(), int(row[0]) if row else 0))
        if done:
            return points
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
