"""Console progress for long waits: what is awaited, for how long so far, and the timeout.

``with waiting("deployment apiserver ready", timeout=120) as w: ...`` shows, on a terminal, one status line
refreshed at most once a second and erased when the wait ends. When the output is not a terminal (CI logs)
it writes exactly one start line and one end line. The helper only displays: the caller's own wait enforces
the timeout (``w.remaining`` helps it share one deadline).

Inside pytest the plugin points the output at the real terminal, past output capturing, so the status is
visible while the test runs; elsewhere it goes to stderr.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from reports.masking import Masker

MIN_INTERVAL = 1.0
HEARTBEAT = 30.0
"""A phase outside the checks (build, deploy) prints a line at least this often, so a CI log never looks hung."""


@dataclass
class Wait:
    """One wait in progress; ``observe()`` adds the latest observation to the status line."""

    what: str
    timeout: float
    started: float = field(default_factory=time.monotonic)
    observation: str | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        return max(0.0, self.timeout - self.elapsed)

    @property
    def expired(self) -> bool:
        return self.elapsed >= self.timeout

    def observe(self, text: str) -> None:
        """Show what was last observed (e.g. ``"2/3 replicas ready"``) next to the elapsed time."""
        self.observation = text

    def status(self) -> str:
        text = f"waiting for {self.what}: {self.elapsed:.0f}s elapsed, timeout {self.timeout:g}s"
        return f"{text} ({self.observation})" if self.observation else text


@dataclass
class _Output:
    stream: TextIO
    isatty: bool
    column: Callable[[], int]


class _Display:
    """Owns the status line; nested waits share it (the innermost is shown)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.output: _Output | None = None
        self.masker: Masker | None = None  # the run's: nothing reaches the console unmasked
        self.active: list[Wait] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._line_open = False
        self._moved_down = False
        self._column = 0

    def resolve(self) -> _Output:
        if self.output is not None:
            return self.output
        stream = sys.stderr
        return _Output(stream=stream, isatty=_isatty(stream), column=lambda: 0)

    def start(self, wait: Wait, out: _Output, interval: float) -> None:
        with self.lock:
            self.active.append(wait)
            if not out.isatty:
                _write(out, f"{_prefix(out)}[wait] {wait.what} (timeout {wait.timeout:g}s)\n")
                return
            if not self._line_open:
                self._column = out.column()
                # Open a line of our own below whatever pytest was printing, to go back to it later.
                self._moved_down = self._column > 0
                _write(out, "\n" if self._moved_down else "")
                self._line_open = True
            self._draw(out)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, args=(out, max(interval, MIN_INTERVAL)), name="geocube-wait", daemon=True
                )
                self._thread.start()

    def finish(self, wait: Wait, out: _Output, outcome: str) -> None:
        thread = None
        with self.lock:
            if wait in self.active:
                self.active.remove(wait)
            if not out.isatty:
                _write(
                    out,
                    f"[wait] {wait.what}: {outcome} after {wait.elapsed:.1f}s (timeout {wait.timeout:g}s)\n",
                )
                return
            if self.active:
                self._draw(out)
                return
            thread, self._thread = self._thread, None
            self._stop.set()
            clear = "\r\x1b[K"
            if self._moved_down:
                clear += "\x1b[1A" + (f"\x1b[{self._column}C" if self._column else "")
            _write(out, clear)
            self._line_open = False
        if thread is not None:
            thread.join(timeout=5)

    def _run(self, out: _Output, interval: float) -> None:
        while not self._stop.wait(interval):
            with self.lock:
                if self._stop.is_set() or not self.active:
                    return
                self._draw(out)

    def _draw(self, out: _Output) -> None:
        wait = self.active[-1]
        text = "⏳ " + wait.status()
        if len(self.active) > 1:
            text += f" [inside {len(self.active) - 1} other wait(s)]"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        if len(text) > width:
            text = text[: max(10, width - 1)] + "…"
        _write(out, "\r\x1b[K" + text)


def _prefix(out: _Output) -> str:
    # Start on a fresh line if pytest left its progress dots on the current one.
    return "\n" if out.column() > 0 else ""


def _write(out: _Output, text: str) -> None:
    if not text:
        return
    if _display.masker is not None:
        text = _display.masker.text(text)
    try:
        out.stream.write(text)
        out.stream.flush()
    except (OSError, ValueError):
        pass  # a closed or broken console must never fail the check that is waiting


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


_display = _Display()


def set_output(stream: TextIO | None, *, isatty: bool | None = None, column: Callable[[], int] | None = None) -> None:
    """Where status lines go (``None``: back to stderr). Used by the plugin; tests may inject a stream."""
    with _display.lock:
        if stream is None:
            _display.output = None
        else:
            _display.output = _Output(
                stream=stream,
                isatty=_isatty(stream) if isatty is None else isatty,
                column=column or (lambda: 0),
            )


def mask_with(masker: Masker | None) -> Masker | None:
    """Mask every console line with the run's ``masker`` (None: no masking); returns the previous one."""
    with _display.lock:
        previous, _display.masker = _display.masker, masker
    return previous


def get_output() -> tuple[TextIO, bool, Callable[[], int]] | None:
    """The current output (stream, isatty, column), so a nested pytest run can restore it."""
    out = _display.output
    return None if out is None else (out.stream, out.isatty, out.column)


@contextmanager
def waiting(what: str, timeout: float, *, interval: float = MIN_INTERVAL) -> Iterator[Wait]:
    """Show ``what`` is being waited for, the elapsed time and ``timeout`` while the block runs.

    The end line (non-terminal output) says ``done``, ``timed out`` (the block raised ``TimeoutError``)
    or ``failed (<exception type>)``; the exception itself propagates unchanged.
    """
    if timeout <= 0:
        raise ValueError(f"waiting({what!r}): timeout must be > 0 seconds. Current input: {timeout!r}")
    wait = Wait(what=what, timeout=timeout)
    out = _display.resolve()
    _display.start(wait, out, interval)
    outcome = "done"
    try:
        yield wait
    except TimeoutError:
        outcome = "timed out"
        raise
    except BaseException as exc:
        outcome = f"failed ({type(exc).__name__})"
        raise
    finally:
        _display.finish(wait, out, outcome)


def line(text: str) -> None:
    """One whole line on the console, past pytest's capture (progress outside any wait or phase)."""
    out = _display.resolve()
    with _display.lock:
        _write(out, f"{_prefix(out)}{text}\n")


@dataclass
class Phase:
    """A long phase in progress (build, deploy): ``step()`` announces what it is doing now."""

    name: str
    log: str | None
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    current: str = "starting"
    _out: _Output | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def step(self, message: str) -> None:
        """Print one progress line now and remember it for the heartbeat."""
        self.current = message
        self._line(message)

    def _line(self, text: str) -> None:
        out = self._out or _display.resolve()
        with _display.lock:
            _write(out, f"{_prefix(out)}[geocube] {self.name} +{_clock(self.elapsed)}: {text}\n")


@contextmanager
def phase(name: str, *, log: str | None = None, heartbeat: float | None = None) -> Iterator[Phase]:
    """Whole lines for a phase outside the checks, readable in a CI log as on a terminal.

    A start line (with the log's path), every ``step()``, a heartbeat at least every ``heartbeat`` seconds
    naming the step still running, and an end line with the duration. Written past pytest's capture.
    """
    period = HEARTBEAT if heartbeat is None else heartbeat
    current = Phase(name=name, log=log, _out=_display.resolve())
    current._line(f"started{f' (log: {log})' if log else ''}")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(period):
            with _display.lock:  # a wait inside the phase says best what it is doing now
                doing = _display.active[-1].status() if _display.active else current.current
            current._line(f"still running: {doing}{f' (log: {log})' if log else ''}")

    thread = threading.Thread(target=beat, name=f"geocube-{name}-heartbeat", daemon=True)
    thread.start()
    outcome = "done"
    try:
        yield current
    except BaseException as exc:
        outcome = f"failed ({type(exc).__name__})"
        raise
    finally:
        stop.set()
        thread.join(timeout=5)
        current._line(f"{outcome} in {_clock(current.elapsed)}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
