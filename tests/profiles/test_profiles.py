"""The suites on the other profiles of the reference stack: Pub/Sub messaging and gs:// storage.

The main job covers pgqueue + local storage. Here the same checks run against the Pub/Sub emulator
and the GCS emulator, in a separate pytest process, on every other profile pair: every check passes,
except that autoscaling is reported INCOMPLETE with the Pub/Sub emulator (it has no backlog metric),
never as a pass. A storage run on the local profile shows the registered known defect of Geocube's
rollback, which gs:// does not have. The stacks are deployed by the suites' own path (fixtures.stack),
the only one there is.

    sudo .venv/bin/pytest tests/profiles -m cluster
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.suite_runs import outcomes, require_embedded_cluster, run_suites

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]


def test_pubsub_and_gs_profiles_pass_and_autoscaling_is_incomplete(tmp_path: Path) -> None:
    require_embedded_cluster()
    record = run_suites(
        ["suites/messaging", "suites/storage", "suites/autoscaling", "suites/platform"],
        ["--messaging", "pubsub", "--storage", "gs"],
        tmp_path,
        "profile-pubsub-gs",
    )
    checks = outcomes(record)
    summary = {rid: (t["status"], (t.get("message") or "")[:300]) for rid, t in checks.items()}
    for rid in ("AS-CONFIG", "AS-SCALE-UP-DOWN", "AS-SHRINK-KEEPS-BUSY"):
        autoscaling = checks.pop(rid)
        assert autoscaling["status"] == "incomplete", f"{rid} with the Pub/Sub emulator: {summary}"
        assert "Cloud Monitoring" in (autoscaling.get("skip_reason") or ""), autoscaling
    failed = {rid: s for rid, s in summary.items() if rid in checks and s[0] != "passed"}
    assert not failed, f"checks that did not pass on pubsub/gs: {failed}"
    assert record["verdict"] == "INCOMPLETE", record["verdict"]
    # On gs:// a missing object counts as deleted: the cancelled job's rollback is clean (FAILED), so the
    # local-storage defect GEOCUBE-ROLLBACK-UNWRITTEN-CONTAINER is neither expected nor observed here.
    cancelled = checks["STO-CANCELLED-JOBS"]["evidence"]
    assert cancelled["job terminal state"] == "FAILED", cancelled
    # The multi-record consolidation defect is the catalog's, on every storage.
    observed = {d["id"] for d in record["known_defects"] if d["observed"]}
    assert observed == {"GEOCUBE-MULTI-RECORD-CONSOLIDATION"}, record["known_defects"]


@pytest.mark.parametrize(("messaging", "storage"), [("pubsub", "local"), ("pgqueue", "gs")])
def test_the_mixed_profile_pairs_pass(tmp_path: Path, messaging: str, storage: str) -> None:
    """Pub/Sub with local storage, pgqueue with gs://: the areas that depend on the profiles all pass."""
    require_embedded_cluster()
    record = run_suites(
        ["suites/messaging", "suites/storage", "suites/autoscaling", "suites/platform"],
        ["--messaging", messaging, "--storage", storage],
        tmp_path,
        f"profile-{messaging}-{storage}",
    )
    checks = outcomes(record)
    summary = {rid: (t["status"], (t.get("message") or "")[:300]) for rid, t in checks.items()}
    # What these environments cannot observe is INCOMPLETE with the reason, never passed: the Pub/Sub emulator has
    # no backlog metric; without a shared volume (gs://) no consolidater can be held busy for the shrink.
    incomplete = {"AS-CONFIG", "AS-SCALE-UP-DOWN", "AS-SHRINK-KEEPS-BUSY"} if messaging == "pubsub" else set()
    incomplete |= {"AS-SHRINK-KEEPS-BUSY"} if storage == "gs" else set()
    for rid in incomplete:
        check = checks.pop(rid)
        assert check["status"] == "incomplete", f"{rid} on {messaging}/{storage}: {summary}"
        assert check.get("skip_reason"), f"{rid} is INCOMPLETE without saying why"
    failed = {rid: s for rid, s in summary.items() if rid in checks and s[0] != "passed"}
    assert not failed, f"checks that did not pass on {messaging}/{storage}: {failed}"
    assert len(checks) + len(incomplete) >= 14, sorted(summary)
    assert record["verdict"] == "INCOMPLETE", record["verdict"]


def test_local_storage_shows_the_registered_rollback_defect_with_its_log_line(tmp_path: Path) -> None:
    """On local storage a cancelled job ends ROLLBACKFAILED: the check passes and the report says why."""
    require_embedded_cluster()
    record = run_suites(["suites/storage"], [], tmp_path, "profile-local-storage")
    cancelled = outcomes(record)["STO-CANCELLED-JOBS"]
    assert cancelled["status"] == "passed", cancelled.get("message")
    assert cancelled["evidence"]["job terminal state"] == "ROLLBACKFAILED", cancelled["evidence"]
    defects = {d["id"]: d for d in record["known_defects"]}
    assert sorted(defects) == ["GEOCUBE-MULTI-RECORD-CONSOLIDATION", "GEOCUBE-ROLLBACK-UNWRITTEN-CONTAINER"], defects
    defect = defects["GEOCUBE-ROLLBACK-UNWRITTEN-CONTAINER"]
    assert (defect["observed"], defect["expected"]) == (True, True)
    multi = defects["GEOCUBE-MULTI-RECORD-CONSOLIDATION"]
    assert multi["observed"] and "EntityAlreadyExists" in multi["evidence"], multi
    assert "failed to remove file" in defect["evidence"] and "no such file or directory" in defect["evidence"]
    assert record["verdict"] == "PARTIAL"  # one area: never a sign-off
    report = (tmp_path / "reports" / "profile-local-storage" / "report.md").read_text()
    assert "## Known defects observed" in report and defect["evidence"] in report


def test_the_nodeport_access_mode_reaches_the_stack_through_node_ports(tmp_path: Path) -> None:
    """--access-mode nodeport: the stack's Services are NodePorts and the runner uses them, no port-forward."""
    require_embedded_cluster()
    record = run_suites(
        ["suites/database", "suites/platform"], ["--access-mode", "nodeport"], tmp_path, "access-nodeport"
    )
    checks = outcomes(record)
    not_passed = {rid: (t["status"], (t.get("message") or "")[:300]) for rid, t in checks.items()
                  if t["status"] != "passed"}  # fmt: skip
    assert not not_passed, f"checks that did not pass with --access-mode nodeport: {not_passed}"
    assert "access=nodeport" in record["inventory"]["profile"], record["inventory"]["profile"]
    assert record["inventory"]["parameters"]["SERVICE_TYPE"] == "NodePort"


def test_the_in_cluster_access_mode_runs_the_suites_as_a_job_and_collects_the_report(tmp_path: Path) -> None:
    """--access-mode in-cluster from outside: a Job in the cluster runs the checks with its service account,
    reaches the stack by DNS, and its report comes back here; nothing of the run is left in the cluster."""
    require_embedded_cluster()
    record = run_suites(
        ["suites/database", "suites/platform", "suites/messaging"],
        ["--access-mode", "in-cluster"],
        tmp_path,
        "access-incluster",
    )
    checks = outcomes(record)
    not_passed = {rid: (t["status"], (t.get("message") or "")[:300]) for rid, t in checks.items()
                  if t["status"] != "passed"}  # fmt: skip
    assert not not_passed, f"checks that did not pass in the in-cluster runner: {not_passed}"
    assert "access=in-cluster" in record["inventory"]["profile"], record["inventory"]["profile"]
    cluster = record["inventory"]["cluster"]
    assert (cluster["context"], cluster["why"]) == ("in-cluster", "default: in a pod, its service account (as kubectl)")
    assert (tmp_path / "reports" / "access-incluster" / "report.html").is_file()
    # The pod runs the installed wheel outside any checkout: node ids still read as in a checkout.
    assert all(t["nodeid"].startswith("suites/") for t in record["tests"]), [t["nodeid"] for t in record["tests"]]
    from fixtures.labels import RUN_ID_LABEL
    from tests.suite_runs import embedded_kube

    with embedded_kube() as kube:
        left = kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}=access-incluster").items
        assert all(ns.status.phase == "Terminating" for ns in left), [ns.metadata.name for ns in left]
        bindings = kube.dynamic.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRoleBinding")
        assert not bindings.get(label_selector=f"{RUN_ID_LABEL}=access-incluster").items
