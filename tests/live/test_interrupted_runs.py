"""Interrupted runs leave nothing behind: SIGTERM undoes at once, SIGKILL is undone by the next run or by gc.

A disruptive opt-in run against a live stack is interrupted at the moment it has changed the stack (the
autoscaler scaled to 0, or the connection holder's Secret and pod created); the stack is then compared
with a snapshot taken before. For disposable namespaces: a killed run's namespace is collected by the next
run, and a running run's namespace survives ``gc``.

    sudo .venv/bin/pytest tests/live -m cluster
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fixtures.labels import RUN_ID_LABEL
from fixtures.lease import lease_name
from tests.live.stack_snapshot import restored, snapshot
from tests.suite_runs import REPO, run_suites

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

CANCELLED_JOBS = "suites/storage/test_storage.py::test_cancelling_writes_one_flag_per_pending_task"
CONN_LIMIT = "suites/database/test_database.py::test_connection_limit_is_1024_and_enforced"
HOLDER = "app.kubernetes.io/component=acceptance-probe"


@contextmanager
def running(args: list[str], tmp_path: Path, run_id: str) -> Iterator[subprocess.Popen[str]]:
    """``pytest <args>`` in the background, as a user's terminal or CI job would run it; killed if left running."""
    command = [
        sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q",
        "--geocube-report-dir", str(tmp_path / "reports"), "--geocube-run-id", run_id,
    ]  # fmt: skip
    log = (tmp_path / f"{run_id}.log").open("w")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        log.close()


def until(
    condition: Callable[[], Any], what: str, process: subprocess.Popen[str] | None = None, timeout: float = 180
) -> Any:
    """Poll ``condition`` (cheap API reads) until truthy; fails naming ``what`` if the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert process is None or process.poll() is None, (
            f"the run ended ({process and process.returncode}) before {what}"
        )
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout:g} s")


def autoscaler_replicas(kube: Any, namespace: str) -> int:
    return int(kube.apps.read_namespaced_deployment("consolidater-autoscaler", namespace).spec.replicas or 0)


def settle(kube: Any, namespace: str, timeout: float = 120) -> None:
    """Until every Deployment has its replicas available (a restored autoscaler starts a new pod)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deployments = kube.apps.list_namespaced_deployment(namespace).items
        if all((d.status.available_replicas or 0) >= (d.spec.replicas or 0) for d in deployments):
            pods = kube.core.list_namespaced_pod(namespace).items
            if all(p.status.phase == "Running" for p in pods):
                return
        time.sleep(0.5)
    raise AssertionError(f"the stack in {namespace} did not settle within {timeout:g} s")


def assert_restored(kube: Any, namespace: str, before: dict[str, Any]) -> None:
    """The stack is as the snapshot ``before`` showed it (up to generations and pod names)."""
    after = restored(snapshot(kube, namespace))
    changed = {key: (value, after.get(key)) for key, value in restored(before).items() if after.get(key) != value}
    assert not changed, f"the live stack changed (before, after): {changed}"


def journal(kube: Any, namespace: str, run_id: str) -> str | None:
    """The journal annotation of run ``run_id``'s lease (None when the lease is gone)."""
    from kubernetes.client.exceptions import ApiException

    try:
        lease = kube.coordination.read_namespaced_lease(lease_name(run_id), namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return str((lease.metadata.annotations or {}).get("geocube-acceptance/journal"))


DISRUPTIVE = ["--allow", "disruptive,test-data"]


def collect_garbage() -> subprocess.CompletedProcess[str]:
    """``geocube-acceptance gc`` on the embedded cluster."""
    command = [sys.executable, "-m", "geocube_acceptance.cli", "gc"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_sigterm_while_the_workers_are_paused_restores_them(kube: Any, live_namespace: str, tmp_path: Path) -> None:
    before = snapshot(kube, live_namespace)
    with running([CANCELLED_JOBS, "--existing-namespace", live_namespace, *DISRUPTIVE], tmp_path, "sigterm") as run:
        until(lambda: autoscaler_replicas(kube, live_namespace) == 0, "the autoscaler was paused", run)
        assert "consolidater-autoscaler back to 1" in (journal(kube, live_namespace, "sigterm") or "")
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == -signal.SIGTERM
    assert autoscaler_replicas(kube, live_namespace) == 1, "restored by the run itself, before it died"
    assert journal(kube, live_namespace, "sigterm") is None, "and its lease removed"
    settle(kube, live_namespace)
    assert_restored(kube, live_namespace, before)


def test_sigkill_while_the_workers_are_paused_is_undone_by_the_next_run(
    kube: Any, live_namespace: str, tmp_path: Path
) -> None:
    before = snapshot(kube, live_namespace)
    with running([CANCELLED_JOBS, "--existing-namespace", live_namespace, *DISRUPTIVE], tmp_path, "sigkill") as run:
        until(lambda: autoscaler_replicas(kube, live_namespace) == 0, "the autoscaler was paused", run)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    assert autoscaler_replicas(kube, live_namespace) == 0, "nothing can undo in a SIGKILLed process"
    assert "consolidater-autoscaler back to 1" in (journal(kube, live_namespace, "sigkill") or ""), (
        "but it is journaled"
    )
    record = run_suites(
        ["suites/platform"], ["-k", "version", "--existing-namespace", live_namespace], tmp_path, "next"
    )
    assert record["verdict"] == "PARTIAL", record.get("session_errors")
    assert autoscaler_replicas(kube, live_namespace) == 1
    assert journal(kube, live_namespace, "sigkill") is None
    settle(kube, live_namespace)
    assert_restored(kube, live_namespace, before)


def test_sigkill_while_holding_connections_is_undone_by_gc(kube: Any, live_namespace: str, tmp_path: Path) -> None:
    before = snapshot(kube, live_namespace)

    def holder() -> list[str]:
        pods = kube.core.list_namespaced_pod(live_namespace, label_selector=HOLDER).items
        secrets = kube.core.list_namespaced_secret(live_namespace, label_selector=HOLDER).items
        return [f"Pod/{p.metadata.name}" for p in pods] + [f"Secret/{s.metadata.name}" for s in secrets]

    with running([CONN_LIMIT, "--existing-namespace", live_namespace, *DISRUPTIVE], tmp_path, "holder") as run:
        until(lambda: len(holder()) == 2, "the holder pod and its Secret (with the password) exist", run)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    assert len(holder()) == 2
    gc = collect_garbage()
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert f"kept         {live_namespace}  (run alive: its lease was renewed" in gc.stdout, "a kept namespace stays"
    assert "undid for run holder" in gc.stdout, gc.stdout
    until(lambda: not holder(), "the holder is gone", timeout=60)
    assert journal(kube, live_namespace, "holder") is None
    settle(kube, live_namespace)
    assert_restored(kube, live_namespace, before)


def test_a_killed_runs_namespace_is_collected_by_the_next_run_and_a_running_one_survives_gc(
    kube: Any, tmp_path: Path
) -> None:
    def namespaces(run_id: str) -> list[Any]:
        return list(kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}").items)

    with running(["suites/platform", "-k", "version"], tmp_path, "killed") as run:
        [namespace] = until(lambda: namespaces("killed"), "the run's namespace exists", run)
        name = namespace.metadata.name
        until(lambda: journal(kube, name, "killed") is not None, "the run's lease exists", run)
        gc = subprocess.run(
            [sys.executable, "-m", "geocube_acceptance.cli", "gc"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert f"kept         {name}  (run alive: its lease was renewed" in gc.stdout, gc.stdout
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    assert namespaces("killed")[0].status.phase == "Active", "a SIGKILLed run deletes nothing itself"
    record = run_suites(["suites/platform"], ["-k", "version"], tmp_path, "collector")
    assert record["verdict"] == "PARTIAL", record.get("session_errors")
    left = namespaces("killed")
    assert not left or left[0].status.phase == "Terminating", "collected by the next run's janitor"
    from fixtures.embedded import storage_dir

    # A pod still terminating in the namespace may write its storage again: the next pass removes it.
    until(lambda: not namespaces("killed"), "the collected namespace is gone")
    assert collect_garbage().returncode == 0
    assert not storage_dir(name).exists(), "with its local stack storage"


def test_sigterm_to_an_in_cluster_run_removes_its_job_and_the_stack_it_deployed(kube: Any, tmp_path: Path) -> None:
    """Ctrl-C/SIGTERM of ``--access-mode in-cluster`` while its pod deploys: the runner namespace, its
    ClusterRoleBinding and (through the pod's own SIGTERM cleanup) the stack's namespace all go."""

    def namespaces() -> list[str]:
        listed = kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}=incluster-term", _request_timeout=15)
        return [ns.metadata.name for ns in listed.items]

    with running(["suites/platform", "--access-mode", "in-cluster"], tmp_path, "incluster-term") as run:
        until(lambda: [n for n in namespaces() if not n.endswith("-runner")], "the pod's stack namespace exists", run)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) != 0
    until(lambda: not namespaces(), "every namespace of the run is gone", timeout=240)
    bindings = kube.dynamic.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRoleBinding")
    assert not bindings.get(label_selector=f"{RUN_ID_LABEL}=incluster-term").items
