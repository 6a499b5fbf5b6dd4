"""What every cached build of this project shares: finding the Go toolchain, and one build at a time per artefact.

The Kubernetes multi-call binary (``localcluster.gobuild``), the pause binary and the images
(``localcluster.images``) and Geocube's binaries (``geocube_stack.gobuild``, ``geocube_stack.module``) are
built into the shared cache, possibly by several processes at once (a self-test next to a run): each takes
the artefact's lock, then looks again whether another process built it meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

GO_DEFAULT = "/usr/local/go/bin/go"
GO_MISSING = (
    f"the Go toolchain (go >= 1.24) is not on PATH nor at {GO_DEFAULT}. Fix: install it from https://go.dev/dl "
    "or `apt-get install golang-go`"
)


def go_executable() -> str | None:
    """``go`` on PATH, else Go's default install location; None when there is neither."""
    return shutil.which("go") or (GO_DEFAULT if os.access(GO_DEFAULT, os.X_OK) else None)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock next to ``path`` (``<path>.lock``) so concurrent builds of one artefact run once."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
