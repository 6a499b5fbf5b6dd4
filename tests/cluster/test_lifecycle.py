"""Lifecycle of the embedded cluster: a dead component is reported and restarted alone by ``up``."""

from __future__ import annotations

import os
import signal
import time

import pytest

from localcluster import processes
from localcluster.cli import main as cluster_cli
from localcluster.cluster import EmbeddedCluster

pytestmark = pytest.mark.cluster


def test_dead_component_is_reported_with_its_log_and_restarted_alone(
    embedded_cluster: EmbeddedCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    records = {r.name: r for r in processes.load(embedded_cluster.layout.pids)}
    apiserver_before = records["kube-apiserver"]
    victim = records["coredns"]
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.is_alive(victim) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert cluster_cli(["status"]) == 1, "status must fail while a component is dead"
    out = capsys.readouterr().out
    assert "coredns" in out and "NOT RUNNING" in out
    # The tail itself varies (after a long session coredns has logged other lines since it started).
    assert "last lines of" in out and "coredns.log" in out, f"status must show the dead component's log tail:\n{out}"

    embedded_cluster.up()
    statuses = {s.name: s for s in embedded_cluster.status()}
    assert statuses["coredns"].healthy and statuses["coredns"].pid != victim.pid
    assert statuses["kube-apiserver"].pid == apiserver_before.pid, "up must not restart healthy components"
