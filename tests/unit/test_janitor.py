"""The janitor's selection, and the disposable namespace lifecycle it relies on (no cluster needed)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fixtures.janitor import LABEL_SELECTOR, Decision, collect_garbage, select_expired
from fixtures.labels import EXPIRES_LABEL, MANAGED_BY_LABEL, RUN_ID_LABEL
from fixtures.lease import KEPT_HOLDER, LeaseState
from fixtures.namespace import (
    CleanupRegistry,
    DisposableNamespace,
    namespace_body,
    namespace_name,
    owner_label_value,
)
from tests.unit.fake_kube import FakeNamespaces, fake_kube

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def ns(
    name: str = "geocube-e2e-run1-abcde",
    *,
    expires: object = NOW - timedelta(hours=1),
    managed: bool = True,
    run_id: str = "run1",
    phase: str = "Active",
) -> dict[str, Any]:
    labels: dict[str, str] = {RUN_ID_LABEL: run_id}
    if managed:
        labels[MANAGED_BY_LABEL] = "geocube-acceptance"
    if isinstance(expires, datetime):
        labels[EXPIRES_LABEL] = str(int(expires.timestamp()))
    elif expires is not None:
        labels[EXPIRES_LABEL] = str(expires)
    return {"metadata": {"name": name, "labels": labels}, "status": {"phase": phase}}


# --------------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "delete", "reason"),
    [
        pytest.param(ns(), True, "expired 1h00m ago", id="expired"),
        pytest.param(ns(expires=NOW + timedelta(minutes=90)), False, "expires in 1h30m", id="not-yet-expired"),
        pytest.param(ns(managed=False), False, "not managed by geocube-acceptance", id="someone-elses"),
        pytest.param(ns("production"), False, "name does not start with geocube-e2e-", id="wrong-prefix"),
        pytest.param(ns(expires=None), False, f"no {EXPIRES_LABEL} label", id="no-expiry"),
        pytest.param(ns(expires="tomorrow"), False, f"unreadable {EXPIRES_LABEL} label 'tomorrow'", id="garbled"),
        pytest.param(ns(phase="Terminating"), False, "already being deleted", id="terminating"),
    ],
)
def test_selection(namespace: dict[str, Any], delete: bool, reason: str) -> None:
    [decision] = select_expired([namespace], NOW)
    assert decision == Decision(namespace["metadata"]["name"], delete, reason)


def test_selection_restricted_to_one_run() -> None:
    decisions = select_expired([ns("geocube-e2e-a-1", run_id="a"), ns("geocube-e2e-b-1", run_id="b")], NOW, "b")
    assert [(d.name, d.delete) for d in decisions] == [("geocube-e2e-a-1", False), ("geocube-e2e-b-1", True)]
    assert decisions[0].reason == "belongs to run 'a', not 'b'"


def lease(holder: str, renewed: datetime, duration: int = 60, namespace: str = "geocube-e2e-run1-abcde") -> LeaseState:
    body = {
        "metadata": {"name": "geocube-acceptance-run1", "namespace": namespace, "labels": {RUN_ID_LABEL: "run1"}},
        "spec": {"holderIdentity": holder, "renewTime": renewed.isoformat(), "leaseDurationSeconds": duration},
    }
    return LeaseState.from_dict(body)


def dead_pid() -> int:
    """A pid that no process has (the kernel's pid_max is far below it)."""
    return 2**22 + 12345


@pytest.mark.parametrize(
    ("namespace", "state", "delete", "reason"),
    [
        pytest.param(ns(), lease("ci-7/1234/99", NOW - timedelta(seconds=20)), False,
                     "run alive: its lease was renewed 20 s ago", id="expired-but-its-run-renews"),
        pytest.param(ns(expires=NOW + timedelta(hours=5)), lease("ci-7/1234/99", NOW - timedelta(minutes=3)), True,
                     "run gone: its lease expired 120 s ago", id="run-stopped-renewing"),
        pytest.param(ns(expires=NOW + timedelta(hours=5)), lease(KEPT_HOLDER, NOW, duration=3600), False,
                     "run alive: its lease was renewed 0 s ago", id="kept-until-its-ttl"),
    ],
)  # fmt: skip
def test_selection_by_lease(namespace: dict[str, Any], state: LeaseState, delete: bool, reason: str) -> None:
    [decision] = select_expired([namespace], NOW, leases={namespace["metadata"]["name"]: state})
    assert (decision.delete, decision.reason) == (delete, reason)


def test_a_holder_process_that_is_gone_on_this_host_is_dead_at_once() -> None:
    import socket

    state = lease(f"{socket.gethostname()}/{dead_pid()}/42", NOW)
    assert state.alive(NOW) == (False, f"its process {dead_pid()} on {socket.gethostname()} is gone")
    [decision] = select_expired([ns(expires=NOW + timedelta(hours=5))], NOW, leases={"geocube-e2e-run1-abcde": state})
    assert decision.delete


def test_a_namespace_we_create_becomes_collectable_exactly_at_its_expiry() -> None:
    body = namespace_body("geocube-e2e-run1-abcde", "run1", "jane@ci-1", NOW, ttl=3600)
    at_expiry = NOW + timedelta(hours=1)
    [before] = select_expired([body], at_expiry - timedelta(seconds=1))
    [after] = select_expired([body], at_expiry)
    assert not before.delete
    assert after.delete


def test_namespace_labels_and_annotations() -> None:
    meta = namespace_body("geocube-e2e-run1-abcde", "run1", "jane@ci-1.example", NOW, ttl=60)["metadata"]
    assert meta["labels"] == {
        MANAGED_BY_LABEL: "geocube-acceptance",
        RUN_ID_LABEL: "run1",
        "geocube-acceptance/owner": "jane_at_ci-1.example",
        EXPIRES_LABEL: str(int((NOW + timedelta(minutes=1)).timestamp())),
    }
    assert meta["annotations"] == {
        "geocube-acceptance/owner": "jane@ci-1.example",
        "geocube-acceptance/expires-at": "2026-01-15T12:01:00+00:00",
    }


def test_namespace_names_are_ours_unique_and_dns_safe() -> None:
    assert namespace_name("20260115-120000", "x7k2p") == "geocube-e2e-20260115-120000-x7k2p"
    names = {namespace_name("run1") for _ in range(50)}
    assert len(names) == 50
    assert all(len(n) <= 63 and n.islower() for n in names)
    with pytest.raises(ValueError, match="longer than 63"):
        namespace_name("r" * 60)


@pytest.mark.parametrize(
    ("owner", "label"),
    [("jane@ci-1", "jane_at_ci-1"), ("ro ot@h:st", "ro_ot_at_h_st"), ("...", "unknown"), ("a" * 80 + "@h", "a" * 63)],
)
def test_owner_label_values_are_valid(owner: str, label: str) -> None:
    assert owner_label_value(owner) == label


# --------------------------------------------------------------------------------------------------
# gc against a fake API
# --------------------------------------------------------------------------------------------------


def test_gc_lists_by_label_and_deletes_only_expired_ones() -> None:
    core = FakeNamespaces([ns("geocube-e2e-old-1"), ns("geocube-e2e-new-1", expires=NOW + timedelta(days=1))])
    collected = collect_garbage(fake_kube(core), now=NOW)
    assert core.calls == [("list", LABEL_SELECTOR), ("delete", "geocube-e2e-old-1")]
    assert [d.delete for d in collected.decisions] == [True, False]
    assert collected.errors == []


def test_gc_removes_the_local_stack_storage_of_what_it_deletes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import fixtures.embedded

    monkeypatch.setattr(fixtures.embedded, "STORAGE_ROOT", tmp_path)
    for name in ("geocube-e2e-old-1", "geocube-e2e-new-1"):
        (tmp_path / name / "ingestion").mkdir(parents=True)
    core = FakeNamespaces([ns("geocube-e2e-old-1"), ns("geocube-e2e-new-1", expires=NOW + timedelta(days=1))])
    collect_garbage(fake_kube(core), now=NOW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["geocube-e2e-new-1"], "only the collected one goes"


def test_gc_on_the_embedded_default_removes_storage_of_namespaces_that_are_gone() -> None:
    import fixtures.embedded

    for name in ("geocube-e2e-gone-1", "geocube-e2e-new-1", "not-ours"):
        (fixtures.embedded.STORAGE_ROOT / name).mkdir()
    core = FakeNamespaces([ns("geocube-e2e-new-1", expires=NOW + timedelta(days=1))])
    assert collect_garbage(fake_kube(core), now=NOW).undone == []  # a user's cluster: this machine's dirs are not its
    collected = collect_garbage(fake_kube(core), now=NOW, local_storage=True)
    assert collected.undone == [
        "removed the local stack storage of geocube-e2e-gone-1, a namespace that no longer exists"
    ]
    assert sorted(p.name for p in fixtures.embedded.STORAGE_ROOT.iterdir()) == ["geocube-e2e-new-1", "not-ours"]


def test_gc_dry_run_deletes_nothing_and_not_found_is_success() -> None:
    core = FakeNamespaces([ns("geocube-e2e-old-1")])
    collect_garbage(fake_kube(core), now=NOW, dry_run=True)
    assert ("delete", "geocube-e2e-old-1") not in core.calls
    gone = FakeNamespaces([ns("geocube-e2e-old-gone")])
    assert collect_garbage(fake_kube(gone), now=NOW).errors == []


# --------------------------------------------------------------------------------------------------
# Cleanup registered before acquisition; run once; run on signals and exit
# --------------------------------------------------------------------------------------------------


def test_deletion_is_registered_before_the_namespace_is_created() -> None:
    core = FakeNamespaces([], create_fails=True)
    registry = CleanupRegistry()
    namespace = DisposableNamespace(fake_kube(core), "geocube-e2e-run1-abcde", run_id="run1", ttl=60,
                                    delete_timeout=1, registry=registry, owner="jane@h")  # fmt: skip
    with pytest.raises(Exception, match="cannot create namespace geocube-e2e-run1-abcde on fake: 500 etcd timeout"):
        namespace.create()
    assert registry.run_all("test") == []  # a half-created namespace is still torn down
    assert core.calls == [("create", "geocube-e2e-run1-abcde"), ("delete", "geocube-e2e-run1-abcde")]
    assert registry.run_all("again") == []
    assert core.calls.count(("delete", "geocube-e2e-run1-abcde")) == 1  # at most once


def test_kept_namespace_is_never_deleted() -> None:
    core = FakeNamespaces([])
    registry = CleanupRegistry()
    namespace = DisposableNamespace(fake_kube(core), "geocube-e2e-run1-keep1", run_id="run1", ttl=60,
                                    delete_timeout=1, registry=registry, owner="jane@h")  # fmt: skip
    namespace.create()
    namespace.keep()
    registry.run_all("exit")
    assert core.calls == [("create", "geocube-e2e-run1-keep1")]


def test_cleanup_errors_are_collected_not_raised() -> None:
    registry = CleanupRegistry()
    ran: list[str] = []

    def fail() -> None:
        raise RuntimeError("API down")

    registry.register("first", lambda: ran.append("first"))
    registry.register("second", fail)
    assert registry.run_all("test") == ["second (test): API down"]
    assert ran == ["first"]  # newest first, and one failure does not stop the others


SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
from fixtures.namespace import CLEANUPS
signal.signal(signal.SIGTERM, signal.SIG_DFL)
CLEANUPS.register("mark", lambda: open({mark!r}, "a").write("cleaned\\n"))
try:
    print("ready", flush=True)  # inside the try: the signal may arrive right after the flush
    time.sleep(30)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize(
    ("signum", "returncode", "stdout"),
    [(signal.SIGTERM, -signal.SIGTERM, "ready\n"), (signal.SIGINT, 3, "ready\ninterrupted\n")],
    ids=["SIGTERM", "SIGINT"],
)
def test_pending_cleanups_run_on_signals_then_chain(tmp_path: Path, signum: int, returncode: int, stdout: str) -> None:
    mark = tmp_path / "mark"
    code = textwrap.dedent(SCRIPT.format(repo=str(REPO), mark=str(mark)))
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signum)
        out, _ = process.communicate(timeout=20)
    assert "ready\n" + out == stdout  # SIGINT still becomes KeyboardInterrupt; SIGTERM still kills
    assert process.returncode == returncode
    assert mark.read_text() == "cleaned\n"  # exactly once, even though atexit runs afterwards


def test_pending_cleanups_run_at_interpreter_exit(tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    code = textwrap.dedent(SCRIPT.format(repo=str(REPO), mark=str(mark))).replace("time.sleep(30)", "pass")
    subprocess.run([sys.executable, "-c", code], check=False, timeout=20, capture_output=True)
    assert mark.read_text() == "cleaned\n"


def test_an_ignored_signal_stays_ignored(tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    code = textwrap.dedent(SCRIPT.format(repo=str(REPO), mark=str(mark))).replace(
        "time.sleep(30)", "time.sleep(1.5); print('survived', flush=True)"
    )
    ignore_sigint = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    with subprocess.Popen([sys.executable, "-c", ignore_sigint + code], stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGINT)  # as a background job of a shell would ignore it
        assert not mark.exists()
        out, _ = process.communicate(timeout=20)
    assert out == "survived\n"
    assert mark.read_text() == "cleaned\n"  # at exit, as usual
