"""Run the acceptance suites in a separate pytest process, as a user would, and read the run's record."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def embedded_kube() -> Iterator[Any]:
    """An API client of the running embedded cluster (skips unless root on Linux)."""
    require_embedded_cluster()
    from fixtures.cluster_client import connect
    from localcluster.cluster import ensure_running

    client = connect(ensure_running(), None)
    try:
        yield client
    finally:
        client.close()


def embedded_cluster_unavailable() -> str | None:
    """Why this process cannot run the embedded cluster, or None (root on Linux): the self-tests' one gate."""
    if platform.system() != "Linux" or os.geteuid() != 0:
        return f"needs the embedded cluster: root on Linux (this is uid {os.getuid()} on {platform.system()})"
    return None


def require_embedded_cluster() -> None:
    """Skip with the reason unless this process can run the embedded cluster (root on Linux)."""
    reason = embedded_cluster_unavailable()
    if reason:
        pytest.skip(reason)


def run_suites(
    paths: list[str], options: list[str], tmp_path: Path, run_id: str, *, timeout: float = 840
) -> dict[str, Any]:
    """``pytest <paths> <options>`` from the repository root; returns its ``run.json`` (AssertionError if none)."""
    report_dir = tmp_path / "reports"
    command = [
        sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider", "-q",
        "--geocube-report-dir", str(report_dir), "--geocube-run-id", run_id, *options,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    record = report_dir / run_id / "run.json"
    assert record.is_file(), f"the run wrote no {record}; its output:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    return dict(json.loads(record.read_text()))


def outcomes(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Requirement id → its test entry."""
    return {t["requirement_id"]: t for t in record["tests"] if t.get("requirement_id")}
