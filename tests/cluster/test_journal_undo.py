"""A journaled change survives its run's SIGKILL: the next run's clean-up (``undo_dead_runs``) undoes it.

The real API server, a real lease and journal, and a real killed process: the worker template that
AS-SCALE-PENDING pins to one node (``RestoreNodeSelector``) goes back to its own ``nodeSelector``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.cluster_client import KubeClient, connect
from fixtures.journal import undo_dead_runs
from fixtures.lease import read_leases

REPO = Path(__file__).resolve().parents[2]
RC = "consolidater"
OWN_SELECTOR = {"disk": "ssd"}
PINNED_TO = "geocube-acceptance-fake-0"

# A run that pins the template inside a journaled change, says so, then waits to be killed.
_PINNING_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fixtures.cluster_client import connect
    from fixtures.journal import ChangeJournal, RestoreNodeSelector, Undoer
    from fixtures.lease import RunLease

    kubeconfig, namespace, rc, node = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    kube = connect(kubeconfig, None)
    journal = ChangeJournal(RunLease(kube, namespace, "killed-pin"), Undoer(kube, namespace))
    template = kube.core.read_namespaced_replication_controller(rc, namespace).spec.template.spec
    before = dict(template.node_selector or {})
    with journal.changes(RestoreNodeSelector(rc, before, ["kubernetes.io/hostname"])):
        pinned = {"spec": {"template": {"spec": {"nodeSelector": {**before, "kubernetes.io/hostname": node}}}}}
        kube.core.patch_namespaced_replication_controller(rc, namespace, pinned)
        print("pinned", flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def kube(admin_kubeconfig: Path) -> Iterator[KubeClient]:
    client = connect(admin_kubeconfig, None)
    yield client
    client.close()


def replication_controller(namespace: str) -> dict[str, Any]:
    """An RC of no replicas (nothing is scheduled or pulled) whose template has a nodeSelector of its own."""
    labels = {"app": RC}
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": RC, "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": labels,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeSelector": OWN_SELECTOR, "containers": [{"name": "c", "image": "unused:1"}]},
            },
        },
    }


def template_selector(kube: KubeClient, namespace: str) -> dict[str, str]:
    spec = kube.core.read_namespaced_replication_controller(RC, namespace).spec.template.spec
    return dict(spec.node_selector or {})


def test_a_pinned_worker_template_is_restored_after_its_run_is_killed(
    kube: KubeClient, namespace: str, admin_kubeconfig: Path
) -> None:
    kube.core.create_namespaced_replication_controller(namespace, replication_controller(namespace))
    with subprocess.Popen(
        [sys.executable, "-c", _PINNING_RUN, str(admin_kubeconfig), namespace, RC, PINNED_TO],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as run:
        try:
            assert run.stdout is not None
            line = run.stdout.readline()  # bounded: the run pins within seconds or dies (EOF)
            if line.strip() != "pinned":
                run.kill()
                pytest.fail(f"the run did not pin the template: {line!r}\n{run.communicate(timeout=30)[1]}")
            run.send_signal(signal.SIGKILL)
            run.wait(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
    assert template_selector(kube, namespace) == {**OWN_SELECTOR, "kubernetes.io/hostname": PINNED_TO}, (
        "nothing can undo in a SIGKILLed process"
    )
    [lease] = read_leases(kube, namespace)
    assert "restore ReplicationController/consolidater" in json.dumps(lease.annotations), "but it is journaled"

    done, errors = undo_dead_runs(kube, namespace)

    assert not errors, errors
    assert any("restore ReplicationController/consolidater's template nodeSelector" in d for d in done), done
    assert template_selector(kube, namespace) == OWN_SELECTOR, "the pin is removed, the template's own key kept"
    assert read_leases(kube, namespace) == [], "and the dead run's lease is gone"
