"""Start, identify and stop the cluster's host processes.

Each process runs in its own session (so a Ctrl-C on the CLI does not kill the cluster), logs to
``logs/<name>.log`` and is recorded in ``pids/<name>.json`` with its pid *and* kernel start time:
``down`` only ever signals a pid whose start time still matches, never a recycled one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    """A process we started: enough to find it again without confusing it with a recycled pid."""

    name: str
    pid: int
    start_time: int
    argv: tuple[str, ...]
    log: Path


# Popen objects of the processes we started: kept referenced so that they are not garbage-collected
# (with a "still running" ResourceWarning) while the cluster outlives the call that started it.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) comes after the parenthesised command, which may itself contain spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_alive(record: ProcessRecord) -> bool:
    if _start_time(record.pid) != record.start_time:
        return False
    try:
        state = Path(f"/proc/{record.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # exited between the two reads
        return False
    return state != "Z"


def start(
    name: str, argv: Sequence[str], pid_dir: Path, log_dir: Path, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` detached, appending to its log, and record it."""
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            close_fds=True,
        )
    _STARTED[proc.pid] = proc
    started = _start_time(proc.pid)
    record = ProcessRecord(name, proc.pid, started if started is not None else -1, tuple(argv), log)
    (pid_dir / f"{name}.json").write_text(
        json.dumps(
            {"name": name, "pid": proc.pid, "start_time": record.start_time, "argv": list(argv), "log": str(log)}
        )
    )
    return record


def load(pid_dir: Path) -> list[ProcessRecord]:
    records = []
    for path in sorted(pid_dir.glob("*.json")) if pid_dir.exists() else []:
        data = json.loads(path.read_text())
        records.append(
            ProcessRecord(data["name"], data["pid"], data["start_time"], tuple(data["argv"]), Path(data["log"]))
        )
    return records


def stop(record: ProcessRecord, pid_dir: Path, grace: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns True if it had to be killed."""
    killed = False
    if is_alive(record):
        os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while is_alive(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_alive(record):
            os.kill(record.pid, signal.SIGKILL)
            killed = True
            while is_alive(record):
                time.sleep(0.05)
    _reap(record.pid)
    (pid_dir / f"{record.name}.json").unlink(missing_ok=True)
    return killed


def _reap(pid: int) -> None:
    # The CLI that started the process may still be its parent; collect it so it is not left a zombie.
    proc = _STARTED.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, for error messages and ``status``."""
    if not log.exists():
        return "(no log yet)"
    with log.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
