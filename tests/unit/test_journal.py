"""The journal of changes to a stack: written before the change, undone in reverse, replayed after a death.

The real API server is exercised in tests/live/test_live_stack.py (SIGTERM, SIGKILL, the next run, gc);
here the order of writes and undos is pinned down against the fake lease API.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from fixtures.errors import DeployError
from fixtures.journal import (
    JOURNAL_ANNOTATION,
    ChangeJournal,
    DropQueueRows,
    EndSessions,
    Remove,
    Rescale,
    RestoreNodeSelector,
    Undo,
    Undoer,
    undo_dead_runs,
    undo_from_json,
    undo_to_json,
)
from fixtures.lease import RunLease
from fixtures.namespace import CleanupRegistry
from tests.unit.fake_kube import FakeLeases

NS = "production"


class FakeWorkloads:
    """Scale and pod/secret calls of AppsV1Api and CoreV1Api, recorded in order."""

    def __init__(self, labels: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.labels = {"app.kubernetes.io/managed-by": "geocube-acceptance"} if labels is None else labels

    def patch_namespaced_deployment_scale(self, name: str, namespace: str, body: Any, _request_timeout: float) -> None:
        self.calls.append(("scale Deployment", name, body["spec"]["replicas"]))

    def patch_namespaced_replication_controller_scale(
        self, name: str, namespace: str, body: Any, _request_timeout: float
    ) -> None:
        self.calls.append(("scale ReplicationController", name, body["spec"]["replicas"]))

    def read_namespaced_pod(self, name: str, namespace: str, _request_timeout: float) -> Any:
        return SimpleNamespace(metadata=SimpleNamespace(labels=self.labels))

    def list_namespaced_pod(self, namespace: str, **_: Any) -> Any:
        return SimpleNamespace(data=json.dumps({"items": []}))  # deleted pods are gone at once here

    def delete_namespaced_pod(
        self, name: str, namespace: str, grace_period_seconds: int, _request_timeout: float
    ) -> None:
        self.calls.append(("delete Pod", name, grace_period_seconds))


def kube(leases: FakeLeases, workloads: FakeWorkloads) -> Any:
    return SimpleNamespace(coordination=leases, apps=workloads, core=workloads, to_dict=lambda item: item)


def journal_in_cluster(leases: FakeLeases) -> list[dict[str, Any]]:
    [lease] = leases.leases.values()
    return list(json.loads(lease["metadata"]["annotations"][JOURNAL_ANNOTATION]))


def make_journal(leases: FakeLeases, workloads: FakeWorkloads) -> ChangeJournal:
    client = kube(leases, workloads)
    return ChangeJournal(RunLease(client, NS, "run1"), Undoer(client, NS), registry=CleanupRegistry())


def test_undos_are_in_the_cluster_before_the_change_and_undone_in_reverse_after() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads()
    journal = make_journal(leases, workloads)
    with journal.changes(Rescale("Deployment", "autoscaler", 1), Rescale("ReplicationController", "worker", 2)):
        assert [e["what"] for e in journal_in_cluster(leases)] == [
            "scale Deployment/autoscaler back to 1",
            "scale ReplicationController/worker back to 2",
        ]
        assert workloads.calls == []
    assert workloads.calls == [("scale ReplicationController", "worker", 2), ("scale Deployment", "autoscaler", 1)]
    assert journal_in_cluster(leases) == []
    assert journal.close() == []
    assert leases.leases == {}, "a live stack's lease goes once nothing is left to undo"


def test_a_failing_check_is_undone_too_and_keeps_its_own_error() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads()
    journal = make_journal(leases, workloads)
    with pytest.raises(AssertionError, match="the check failed"), journal.changes(Remove("Pod", "probe")):
        raise AssertionError("the check failed")
    assert workloads.calls == [("delete Pod", "probe", 1)]


def test_a_read_only_run_creates_no_lease() -> None:
    leases = FakeLeases()
    journal = make_journal(leases, FakeWorkloads())
    assert journal.close() == []
    assert leases.calls == []


def test_an_interrupted_run_undoes_what_is_pending_once() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads()
    registry = CleanupRegistry()
    client = kube(leases, workloads)
    journal = ChangeJournal(RunLease(client, NS, "run1"), Undoer(client, NS), registry=registry)
    with journal.changes(Rescale("Deployment", "autoscaler", 3)):
        assert registry.run_all("SIGTERM") == []  # what the signal handler does
        assert workloads.calls == [("scale Deployment", "autoscaler", 3)]
    assert workloads.calls == [("scale Deployment", "autoscaler", 3)], "the block's exit finds nothing left to undo"


def test_an_undo_that_fails_is_named_and_stays_in_the_journal() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads(labels={})
    journal = make_journal(leases, workloads)
    with (
        pytest.raises(DeployError, match="refusing to delete Pod/app in production: it does not carry"),
        journal.changes(Remove("Pod", "app")),
    ):
        pass
    assert [e["what"] for e in journal_in_cluster(leases)] == ["delete Pod/app"]
    assert len(journal.close()) == 1, "still failing at the end of the run, and said so"
    assert len(leases.leases) == 1, "the lease stays for the next run or gc to report"


def test_a_failing_check_keeps_its_error_when_its_undo_fails_too() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads(labels={})
    journal = make_journal(leases, workloads)
    with pytest.raises(AssertionError, match="the check failed") as failure, journal.changes(Remove("Pod", "app")):
        raise AssertionError("the check failed")
    assert "could not be undone: delete Pod/app: refusing" in "".join(failure.value.__notes__)
    assert len(journal.close()) == 1


@pytest.mark.parametrize(
    "undo",
    [
        Rescale("Deployment", "a", 0),
        Remove("Secret", "s"),
        DropQueueRows("consolidations", b"x".hex(), "app"),
        EndSessions("geocube-acceptance-holder"),
        RestoreNodeSelector("consolidater", {"disk": "ssd"}, ["kubernetes.io/hostname"]),
    ],
)
def test_undos_round_trip_through_json(undo: Undo) -> None:
    assert undo_from_json(json.loads(json.dumps(undo_to_json(undo)))) == undo


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"op": "exec", "command": "rm -rf /"}, "unknown journal operation 'exec'"),
        ({"op": "remove", "kind": "Namespace", "name": "production"}, "cannot remove a Namespace"),
        ({"op": "rescale", "kind": "StatefulSet", "name": "db", "replicas": 0}, "cannot rescale StatefulSet"),
        ({"op": "rescale", "kind": "Deployment"}, "malformed journal entry"),
        (
            {"op": "restore-node-selector", "rc": "c", "node_selector": "x", "added": []},
            "cannot restore a nodeSelector",
        ),
    ],
)
def test_a_journal_is_not_trusted_blindly(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        undo_from_json(data)


def dead_run_lease(leases: FakeLeases, entries: list[dict[str, Any]], holder: str, renewed: datetime) -> None:
    leases.create_namespaced_lease(
        NS,
        {
            "metadata": {
                "name": "geocube-acceptance-run0",
                "labels": {"geocube-acceptance/run-id": "run0"},
                "annotations": {JOURNAL_ANNOTATION: json.dumps(entries)},
            },
            "spec": {"holderIdentity": holder, "renewTime": renewed.isoformat(), "leaseDurationSeconds": 60},
        },
        _request_timeout=1,
    )


ENTRIES = [
    {"seq": n, "what": undo.describe(), "undo": undo_to_json(undo)}
    for n, undo in enumerate((Rescale("Deployment", "autoscaler", 1), Remove("Pod", "probe")), start=1)
]


def test_the_next_run_undoes_a_killed_runs_journal_newest_first_then_drops_its_lease() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads()
    now = datetime.now(UTC)
    dead_run_lease(leases, ENTRIES, f"{socket.gethostname()}/{2**22 + 7}/1", now)  # its process is gone
    done, errors = undo_dead_runs(kube(leases, workloads), NS, now=now)
    assert errors == []
    assert workloads.calls == [("delete Pod", "probe", 1), ("scale Deployment", "autoscaler", 1)]
    assert [line.split(": ", 1)[1] for line in done] == ["delete Pod/probe", "scale Deployment/autoscaler back to 1"]
    assert leases.leases == {}


def test_a_live_runs_journal_is_never_touched_and_dry_run_changes_nothing() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads()
    now = datetime.now(UTC)
    dead_run_lease(leases, ENTRIES, "other-host/1/1", now - timedelta(seconds=5))
    assert undo_dead_runs(kube(leases, workloads), NS, now=now) == ([], [])
    done, _ = undo_dead_runs(kube(leases, workloads), NS, now=now + timedelta(minutes=5), dry_run=True)
    assert len(done) == 2 and all(line.startswith("would undo") for line in done)
    assert workloads.calls == [] and len(leases.leases) == 1


def test_an_entry_that_cannot_be_undone_keeps_the_lease_for_the_next_attempt() -> None:
    leases, workloads = FakeLeases(), FakeWorkloads()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ApiException(status=403, reason="Forbidden")

    workloads.patch_namespaced_deployment_scale = refuse  # type: ignore[method-assign]
    now = datetime.now(UTC)
    dead_run_lease(leases, ENTRIES, "other-host/1/1", now - timedelta(minutes=5))
    _, errors = undo_dead_runs(kube(leases, workloads), NS, now=now)
    assert len(errors) == 1 and "scale Deployment/autoscaler back to 1" in errors[0] and "403" in errors[0]
    assert workloads.calls == [("delete Pod", "probe", 1)]
    assert len(leases.leases) == 1


def test_a_node_selector_is_restored_with_the_added_keys_removed() -> None:
    undo = RestoreNodeSelector("consolidater", {"disk": "ssd"}, ["kubernetes.io/hostname"])
    selector = undo.patch()["spec"]["template"]["spec"]["nodeSelector"]
    assert selector == {"kubernetes.io/hostname": None, "disk": "ssd"}
