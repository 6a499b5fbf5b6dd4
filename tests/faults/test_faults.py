"""Each acceptance check fails against a deployment broken in the way it guards against — and only it.

Every case copies the reference manifests, injects one fault (a manifest edit that must apply exactly
once, or a parameter), runs the area's suite in a separate pytest process as a user would, on the
embedded cluster, and reads the run's ``run.json``: the checks that did not pass must be exactly the
expected ones, each with a message naming the cause. The healthy run is covered by the main job.

    sudo .venv/bin/pytest tests/faults -m cluster
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.suite_runs import REPO, outcomes, require_embedded_cluster, run_suites

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Fault:
    """One deliberate defect, the suite area to run, and the checks that must catch it (id → message part)."""

    name: str
    area: str
    edits: tuple[tuple[str, str, str], ...]  # (file under manifests/, old text, new text)
    expected: dict[str, str]
    params: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())
    blocked: tuple[str, ...] = ()  # checks skipped as BLOCKED because an expected one is their prerequisite


FAULTS = (
    Fault(
        "max-connections-100",
        "database",
        (("base/database.yaml", '"max_connections=1024"', '"max_connections=100"'),),
        {"DB-CONN-SETTINGS": "max_connections is 100", "DB-CONN-LIMIT": "max_connections is 100"},
    ),
    # A role limit lets the server's settings look right: both checks read it and name it (the disruptive one
    # before it fills anything).
    Fault(
        "role-connection-limit",
        "database",
        (
            (
                "base/initdb.yaml",
                """CREATE ROLE :"role" WITH LOGIN PASSWORD :'password';""",
                """CREATE ROLE :"role" WITH LOGIN PASSWORD :'password' CONNECTION LIMIT 200;""",
            ),
        ),
        {"DB-CONN-SETTINGS": "CONNECTION LIMIT 200", "DB-CONN-LIMIT": "CONNECTION LIMIT 200"},
    ),
    Fault(
        "missing-grant",
        "database",
        (
            (
                "base/initdb.yaml",
                'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA geocube TO :"role";',
                'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA geocube TO :"role";\n'
                '    REVOKE DELETE ON geocube.job_logs FROM :"role";',
            ),
        ),
        {"DB-PRIVILEGES": "geocube.job_logs: DELETE"},
    ),
    Fault(
        "ddl-allowed",
        "database",
        (
            (
                "base/initdb.yaml",
                'GRANT USAGE ON SCHEMA geocube TO :"role";',
                'GRANT USAGE, CREATE ON SCHEMA geocube TO :"role";',
            ),
        ),
        {"DB-LEAST-PRIVILEGE": "could run `CREATE TABLE"},
    ),
    Fault(
        "loopback-trusted",
        "database",
        (("base/database.yaml", 'value: "--auth-local=trust --auth-host=scram-sha-256"', 'value: ""'),),
        {"DB-AUTH": "was accepted"},
    ),
    Fault(
        "role-without-create",
        "platform",
        (("base/autoscaler.yaml", 'verbs: ["get", "list", "delete", "create"]', 'verbs: ["get", "list", "delete"]'),),
        {"PLAT-AUTOSCALER-RBAC": "may not create pods"},
    ),
    Fault(
        "apiserver-service-wrong-port",
        "platform",
        (("base/apiserver.yaml", "targetPort: 8080", "targetPort: 8081"),),
        {"PLAT-VERSION": "did not complete a protocol round-trip"},
        options=("--geocube-timeouts-wait", "20s"),
    ),
    # The consolidater RC has 0 replicas with pgqueue, so the deploy never starts its template; the autoscaler's
    # workers would crash as soon as there is work.
    Fault(
        "consolidater-without-cancelled-jobs",
        "platform",
        (("base/consolidater.yaml", "-cancelledJobs={{CANCELLED_JOBS_STORAGE}}", "-cancelledJobs="),),
        {"PLAT-WORKLOADS-READY": "ReplicationController/consolidater's template"},
    ),
    Fault(
        "apiserver-default-service-account",
        "platform",
        (("base/apiserver.yaml", "serviceAccountName: apiserver", "serviceAccountName: default"),),
        {"PLAT-SERVICE-ACCOUNTS": "uses ServiceAccount 'default'"},
    ),
    # Measuring the wrong queue breaks all autoscaling: the read-only check names it from the flags, and the
    # scaling checks, which build on it, are blocked instead of waiting for pods that never come.
    Fault(
        "autoscaler-wrong-queue",
        "autoscaling",
        (("base/autoscaler.yaml", "- -queue=consolidations", "- -queue=consolidations-worker"),),
        {"AS-CONFIG": "'consolidations-worker'"},
        blocked=("AS-SCALE-UP-DOWN", "AS-SHRINK-KEEPS-BUSY"),
    ),
    # Workers that cannot be scheduled: the flags are right (AS-CONFIG passes), but the autoscaler's first pods
    # stay Pending and it stops growing; the scaling check names the scheduler's reason instead of timing out.
    Fault(
        "consolidater-unschedulable",
        "autoscaling",
        (),
        {"AS-SCALE-UP-DOWN": "Unschedulable"},
        params=("CONSOLIDATER_CPU_REQUEST=64",),
        blocked=("AS-SHRINK-KEEPS-BUSY",),
    ),
    # The autoscaler asks every pod for its cost where nothing listens: it cannot tell busy consolidaters
    # from idle ones (upstream panics on such a shrink). Scaling up and down to zero never asks, so only the
    # shrink check fails.
    Fault(
        "autoscaler-wrong-cost-port",
        "autoscaling",
        (("base/autoscaler.yaml", "- -pod.cost.port=9000", "- -pod.cost.port=9001"),),
        {"AS-SHRINK-KEEPS-BUSY": "http://<pod IP>:9001/termination_cost"},
    ),
    # Without the push subscription no job event reaches the server: the queue check names the cause, and
    # the two checks that need a real job to finish see it stuck (the transport itself still works).
    Fault(
        "pubsub-without-push-subscription",
        "messaging",
        (
            (
                "messaging/pubsub/pubsub-init.yaml",
                '\\"pushConfig\\":{\\"pushEndpoint\\":\\"http://apiserver:8080/push\\"}',
                '\\"pushConfig\\":{}',
            ),
        ),
        {
            "MSG-QUEUES": "no push subscription on topic 'events'",
            "MSG-APP-PATH": "never reached DONE",
            "MSG-MALFORMED": "never reached DONE",
        },
        options=("--messaging", "pubsub", "--geocube-timeouts-wait", "30s"),
    ),
    # The server's user may not enqueue: the transport check names it. The checks built on the transport (a real
    # job, garbage) are reported BLOCKED by it rather than failing again for the same cause; the queue table
    # itself is intact, so MSG-QUEUES passes.
    Fault(
        "pgq-insert-revoked",
        "messaging",
        (
            (
                "messaging/pgqueue/messaging.yaml",
                'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE pgq_jobs TO :"role";',
                'GRANT SELECT, UPDATE, DELETE ON TABLE pgq_jobs TO :"role";',
            ),
        ),
        {"MSG-TRANSPORT": "permission denied for table pgq_jobs"},
        options=("--geocube-timeouts-wait", "30s"),
        blocked=("MSG-MALFORMED", "MSG-APP-PATH"),
    ),
    Fault(
        "cancelled-jobs-path-not-shared",
        "storage",
        (("base/apiserver.yaml", "- -cancelledJobs={{CANCELLED_JOBS_STORAGE}}", "- -cancelledJobs=/tmp/cancelled"),),
        {"STO-SHARED": "-cancelledJobs=/tmp/cancelled", "STO-CANCELLED-JOBS": "look under"},
    ),
    # A server whose GDAL cannot read GeoTIFF: nothing users index can be read. The read-path check names
    # GDAL's refusal; the consolidating checks cannot even index their input.
    Fault(
        "server-gdal-without-gtiff",
        "storage",
        (
            (
                "base/apiserver.yaml",
                "            - name: GEOCUBE_WITH_GCS\n",
                "            - {name: GDAL_SKIP, value: GTiff}\n            - name: GEOCUBE_WITH_GCS\n",
            ),
        ),
        {
            check: "not recognized as a supported file format"
            for check in ("STO-READ-BACK", "STO-MULTI-RECORD", "STO-INGESTION", "STO-CANCELLED-JOBS")
        },
    ),
    Fault(
        "storage-volume-not-shared",
        "storage",
        (
            (
                "base/consolidater.yaml",
                "- {name: storage, {{STORAGE_VOLUME_SOURCE}}}",
                "- {name: storage, emptyDir: {}}",
            ),
        ),
        {
            "STO-SHARED": "emptyDir",
            "STO-INGESTION": "never reached DONE",
            # The multi-record consolidation fails for the same cause, not as the registered known defect.
            "STO-MULTI-RECORD": "matches no entry of suites/known_defects.toml",
        },
        options=("--geocube-timeouts-wait", "60s"),
    ),
)


def inject(fault: Fault, target: Path) -> Path:
    """A copy of the reference manifests with ``fault``'s edits; an edit that does not apply once is an error."""
    manifests = target / "manifests"
    shutil.copytree(REPO / "manifests", manifests)
    for relative, old, new in fault.edits:
        path = manifests / relative
        text = path.read_text()
        if text.count(old) != 1:
            raise AssertionError(
                f"fault {fault.name}: {relative} holds {text.count(old)} occurrence(s) of {old!r}, expected exactly "
                "1; the reference manifests changed, update the fault"
            )
        path.write_text(text.replace(old, new))
    return manifests


def run_area(fault: Fault, tmp_path: Path) -> dict[str, Any]:
    """Run ``suites/<area>`` against the faulty manifests in a separate pytest process; returns run.json."""
    manifests = inject(fault, tmp_path)
    options = ["--manifests-dir", str(manifests), *(a for p in fault.params for a in ("--set", p)), *fault.options]
    return run_suites([f"suites/{fault.area}"], options, tmp_path, f"fault-{fault.name}"[:40].rstrip("-"))


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_fails_exactly_its_check(fault: Fault, tmp_path: Path) -> None:
    require_embedded_cluster()
    record = run_area(fault, tmp_path)
    checks = outcomes(record)
    summary = {rid: (t["status"], (t.get("message") or t.get("skip_reason") or "")[:300]) for rid, t in checks.items()}
    blocked = {rid for rid, t in checks.items() if (t.get("skip_reason") or "").startswith("BLOCKED:")}
    not_passed = {rid for rid, t in checks.items() if t["status"] != "passed"} - blocked
    assert not_passed == set(fault.expected), (
        f"fault {fault.name}: expected exactly {sorted(fault.expected)} to fail, got {sorted(not_passed)}: {summary}"
    )
    assert blocked == set(fault.blocked), f"fault {fault.name}: expected {sorted(fault.blocked)} blocked: {summary}"
    for rid, words in fault.expected.items():
        text = f"{checks[rid].get('message') or ''}\n{checks[rid].get('longrepr') or ''}"
        assert words in text, f"fault {fault.name}: {rid} failed without naming the cause ({words!r}): {text[:1500]}"
