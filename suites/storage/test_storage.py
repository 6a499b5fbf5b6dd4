"""Ingestion and cancelled-jobs storage, read where the deployed API server reads it (local path or gs://)."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import grpc
import pytest

from fixtures.access import Storage
from fixtures.checks import AOI_LONLAT, Consolidation, input_raster, prepare_stored, put_input
from fixtures.config import Settings
from fixtures.deployed import AutoscalerConfig, ServerConfig, read_container
from fixtures.stack import Stack
from geocube_stack.client import CubeImage, GeocubeClient, PreparedConsolidation
from geocube_stack.errors import StackError
from geocube_stack.geotiff import Raster, cog_problems, pattern, tiff_ifds, tiff_summary
from reports.defects import DefectWitness
from suites.storage.consumers import paused_consumers
from suites.storage.read_path import compare
from suites.storage.sharing import sharing_problem

pytestmark = pytest.mark.storage

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CANCEL_SETTLED = frozenset({"FAILED", "ROLLBACKFAILED", "CANCELLATIONFAILED", "DONE", "DONEBUTUNTIDY"})
"""States a cancelled job rests in: FAILED after a clean rollback; the others wait for a user or are wrong."""
CLEAN_CANCEL = "FAILED"


@pytest.mark.requirement("STO-SHARED")
def test_server_and_consolidaters_share_their_storage(
    deployed_stack: Stack,
    deployed_server: ServerConfig,
    deployed_autoscaler: AutoscalerConfig,
    stack_storage: Storage,
    evidence: Any,
) -> None:
    """Read-only: the same cancelled-jobs location in both, both storages on one durable volume, and existing."""
    kube, namespace = deployed_stack.kube, deployed_stack.namespace
    # The workloads server_config and autoscaler_config read (their first container, like them).
    server_spec = kube.to_dict(kube.apps.read_namespaced_deployment("apiserver", namespace))["spec"]["template"]["spec"]
    rc = deployed_autoscaler.rc
    worker_spec = kube.to_dict(kube.core.read_namespaced_replication_controller(rc, namespace))["spec"]["template"]
    worker_spec = worker_spec["spec"]
    worker_flags = read_container(kube, namespace, "ReplicationController", rc)
    worker_cancelled = worker_flags.flag("cancelledJobs", "")
    evidence.add(
        "server", {"ingestion": deployed_server.ingestion_storage, "cancelledJobs": deployed_server.cancelled_jobs}
    )
    evidence.add(f"ReplicationController/{rc}", {"cancelledJobs": worker_cancelled})
    problems = []
    if worker_cancelled.rstrip("/") != deployed_server.cancelled_jobs.rstrip("/"):
        problems.append(
            f"the server writes cancellation flags under -cancelledJobs={deployed_server.cancelled_jobs}, the "
            f"consolidaters of ReplicationController/{rc} look under -cancelledJobs={worker_cancelled or '(unset)'}: "
            "a cancelled job's tasks would still run. Fix: the same location in both"
        )
    server = (server_spec, server_spec["containers"][0])
    worker = (worker_spec, worker_spec["containers"][0])
    for what, path in (("ingestion storage", deployed_server.ingestion_storage),
                       ("cancelled-jobs storage", deployed_server.cancelled_jobs)):  # fmt: skip
        problems += filter(None, [sharing_problem(what, path, server, worker), stack_storage.location_problem(path)])
    assert not problems, "\n".join(problems)


@pytest.mark.requirement("STO-INGESTION")
def test_consolidation_writes_a_cog(
    consolidation: Consolidation, stack_storage: Storage, deployed_server: ServerConfig, evidence: Any
) -> None:
    root = deployed_server.ingestion_storage.rstrip("/")
    prefix = f"{root}/{consolidation.layout}/"
    written = stack_storage.list(prefix)
    evidence.add("ingestion storage", root)
    evidence.add("files written", written)
    assert written, (
        f"job {consolidation.job.job_id} is DONE but nothing was written under {prefix}: the consolidaters do not "
        f"write where the server's -ingestionStorage points ({root}). Fix: one storage shared by both."
    )
    # A regular grid names cells "x/y": the cell part may hold slashes.
    pattern = re.compile(rf"^{re.escape(prefix)}[^/]+(?:/[^/]+)*/{re.escape(consolidation.instance_id)}/{UUID}\.tif$")
    misplaced = [w for w in written if not pattern.match(w)]
    assert not misplaced, f"files outside <layout>/<cell>/<instanceID>/<uuid>.tif: {misplaced}"
    problems = {}
    for uri in written:
        data = stack_storage.read(uri)
        found = cog_problems(data)
        if found:
            problems[uri] = found
        evidence.add(f"file {uri.rsplit('/', 1)[-1]}", {"bytes": len(data), "images": len(tiff_ifds(data))})
    # The layout, not the georeferencing: GeoKeyDirectory's numbers and the tile arrays say nothing to a reader.
    tags = tiff_summary(stack_storage.read(written[0]))
    evidence.add("first file's tags", {k: v for k, v in tags.items() if not k.startswith(("GeoKey", "Tile")) or
                                       k in ("TileWidth", "TileLength")})  # fmt: skip
    assert not problems, "consolidated files that are not cloud-optimised GeoTIFFs:\n" + "\n".join(
        f"  {uri}: {'; '.join(found)}" for uri, found in problems.items()
    )


@pytest.mark.requirement("STO-READ-BACK")
def test_indexed_records_read_back_pixel_identical(
    geocube: GeocubeClient, stack_storage: Storage, deployed_server: ServerConfig, evidence: Any
) -> None:
    """Index two records of distinct pixels, read both with GetCube on their own grid, compare every pixel."""
    raster = input_raster()
    suffix = secrets.token_hex(4)
    pixels = [pattern(raster, seed) for seed in range(2)]
    prepared = _index(geocube, stack_storage, deployed_server, raster, suffix, pixels)
    images = _read(geocube, prepared, raster)
    results = compare(raster, _by_record(prepared, pixels), images)
    evidence.add("GetCube", {"crs": f"epsg:{raster.epsg}", "size": f"{raster.width}x{raster.height}",
                             "images": [{"records": list(i.record_ids), "shape": list(i.shape), "dtype": i.dtype,
                                         "bytes": len(i.data), "error": i.error} for i in images]})  # fmt: skip
    evidence.add("pixel-identical records", [r.record_id for r in results if r.problem is None])
    problems = [f"record {r.record_id}: {r.problem}" for r in results if r.problem]
    assert not problems, (
        f"reading indexed data back with GetCube (instance {prepared.instance_id}, the inputs' own grid) does not "
        "give the indexed pixels:\n  " + "\n  ".join(problems)
    )


@pytest.mark.requirement("STO-MULTI-RECORD")
def test_two_records_consolidate_into_one_cell_and_read_back(
    geocube: GeocubeClient,
    stack_storage: Storage,
    deployed_server: ServerConfig,
    geocube_settings: Settings,
    evidence: Any,
    known_defects: DefectWitness,
) -> None:
    """The notebooks' consolidation: two records into one layout cell, then read back with GetCube."""
    raster = input_raster()
    suffix = secrets.token_hex(4)
    pixels = [pattern(raster, seed) for seed in (2, 3)]
    prepared = _index(geocube, stack_storage, deployed_server, raster, suffix, pixels)
    job_id = geocube.start_consolidation(prepared)
    evidence.add("job", job_id)
    try:
        job = geocube.wait_job(job_id, timeout=geocube_settings.timeouts.wait)
    except StackError as err:
        defect = known_defects.recognise(str(err))
        if defect is not None:
            evidence.add("known defect", defect.id)
            return
        pytest.fail(
            f"consolidating records {list(prepared.record_ids)} into one cell of {prepared.layout} failed, and the "
            f"job's log matches no entry of suites/known_defects.toml: {err}",
            pytrace=False,
        )
    evidence.add("job states", list(job.states_seen))
    images = _read(geocube, prepared, raster)
    problems = [f"record {r.record_id}: {r.problem}" for r in compare(raster, _by_record(prepared, pixels), images)]
    assert not problems, (
        f"after consolidating {list(prepared.record_ids)} into one cell of {prepared.layout}, GetCube does not give "
        "the indexed pixels:\n  " + "\n  ".join(problems)
    )


@pytest.mark.slow
@pytest.mark.requirement("STO-CANCELLED-JOBS")
def test_cancelling_writes_one_flag_per_pending_task(
    deployed_stack: Stack,
    deployed_server: ServerConfig,
    deployed_autoscaler: AutoscalerConfig,
    geocube: GeocubeClient,
    stack_storage: Storage,
    evidence: Any,
    known_defects: DefectWitness,
) -> None:
    root = deployed_server.cancelled_jobs.rstrip("/")
    worker = read_container(
        deployed_stack.kube, deployed_stack.namespace, "ReplicationController", deployed_autoscaler.rc
    )
    watched = worker.flag("cancelledJobs").rstrip("/")
    evidence.add("consolidaters' -cancelledJobs", watched)
    assert watched == root, (
        f"the server flags cancelled tasks under {root} but the consolidaters ({worker.workload}) look under "
        f"{watched}: cancelled tasks would still be consolidated. Fix: one -cancelledJobs value for both."
    )
    # Stored before the consumers pause (a storage that refuses it is named at once); the catalog rows come
    # after it, like the job: a run interrupted while pausing leaves a live stack's catalog as it was.
    suffix = secrets.token_hex(4)
    uri = put_input(stack_storage, deployed_server, suffix)
    with paused_consumers(deployed_stack, deployed_autoscaler):
        job_id = geocube.start_consolidation(prepare_stored(geocube, uri, suffix))
        pending = _wait_pending_tasks(geocube, job_id, timeout=120)
        geocube.geocube.CancelJob(geocube.pb.operations.CancelJobRequest(id=job_id), timeout=30)
        flags, states, logs = _wait_flags(geocube, stack_storage, f"{root}/{job_id}_", pending, timeout=120)
    evidence.add("cancelled-jobs storage", root)
    evidence.add("pending tasks when cancelled", pending)
    evidence.add("flags written", flags)
    evidence.add("job states after cancel", states)
    evidence.add("job terminal state", states[-1] if states else None)
    assert len(flags) == pending, (
        f"{pending} task(s) were pending when job {job_id} was cancelled, but {len(flags)} flag(s) appeared under "
        f"{root}/{job_id}_*: {flags}. Job states: {states}. Fix: -cancelledJobs must be a writable location that "
        "the consolidaters read too."
    )
    assert all(re.fullmatch(rf"{re.escape(root)}/{job_id}_{UUID}", f) for f in flags), (
        f"flags not named <jobID>_<taskID>: {flags}"
    )
    _assert_cancel_settled(job_id, states, logs, known_defects, evidence)


def _index(
    geocube: GeocubeClient, storage: Storage, server: ServerConfig, raster: Raster, suffix: str, pixels: list[bytes]
) -> PreparedConsolidation:
    """Store one GeoTIFF per pixel set where the server reads, and index each as a record of one instance."""
    __tracebackhide__ = True
    uris = [put_input(storage, server, f"{suffix}-{index}", data) for index, data in enumerate(pixels)]
    try:
        return geocube.prepare_records(container_uris=uris, raster=raster, aoi_lonlat=AOI_LONLAT, suffix=suffix)
    except grpc.RpcError as err:
        pytest.fail(f"indexing {uris} failed: {err.code().name}: {err.details()}", pytrace=False)


def _read(geocube: GeocubeClient, prepared: PreparedConsolidation, raster: Raster) -> list[CubeImage]:
    """GetCube of the prepared records on the inputs' own grid."""
    __tracebackhide__ = True
    try:
        return geocube.get_cube(prepared.instance_id, list(prepared.record_ids), raster)
    except grpc.RpcError as err:
        pytest.fail(
            f"GetCube of the indexed records {list(prepared.record_ids)} failed: {err.code().name}: {err.details()}",
            pytrace=False,
        )


def _by_record(prepared: PreparedConsolidation, pixels: list[bytes]) -> dict[str, bytes]:
    return dict(zip(prepared.record_ids, pixels, strict=True))


def _assert_cancel_settled(
    job_id: str, states: list[str], logs: list[str], known_defects: DefectWitness, evidence: Any
) -> None:
    """A cancelled job ends FAILED (clean rollback); any other end passes only as a registered known defect."""
    __tracebackhide__ = True
    final = states[-1] if states else "never answered"
    log_text = "\n".join(logs)
    assert final in CANCEL_SETTLED, (
        f"job {job_id} did not settle within the bound after CancelJob: states {states}; its log "
        f"(GetJob):\n  " + "\n  ".join(logs)
    )
    if final == CLEAN_CANCEL:
        return
    defect = known_defects.recognise(log_text)
    if defect is not None:
        evidence.add("known defect", defect.id)
        return
    pytest.fail(
        f"job {job_id} ended {final} after CancelJob instead of {CLEAN_CANCEL} (a clean rollback), and its log "
        f"matches no entry of suites/known_defects.toml: a new defect. States {states}; log (GetJob):\n  "
        + "\n  ".join(logs),
        pytrace=False,
    )


def _wait_pending_tasks(geocube: GeocubeClient, job_id: str, *, timeout: float) -> int:
    """Until the job is CONSOLIDATIONINPROGRESS with active tasks; returns their count."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    job: Any = None
    while time.monotonic() < deadline:
        job = geocube.geocube.GetJob(geocube.pb.operations.GetJobRequest(id=job_id, log_limit=20), timeout=30).job
        if job.state == "CONSOLIDATIONINPROGRESS" and job.active_tasks > 0:
            return int(job.active_tasks)
        time.sleep(0.5)
    pytest.fail(
        f"job {job_id} never had pending tasks in CONSOLIDATIONINPROGRESS within {timeout:g} s (last: "
        f"{getattr(job, 'state', None)}, logs {list(getattr(job, 'logs', []))})",
        pytrace=False,
    )


def _wait_flags(
    geocube: GeocubeClient, storage: Storage, prefix: str, expected: int, *, timeout: float
) -> tuple[list[str], list[str], list[str]]:
    """Until ``expected`` flags exist under ``prefix`` and the job rests in a terminal state (or timeout).

    Returns the flags, the job states seen and the job's last log lines.
    """
    job_id = prefix.rsplit("/", 1)[-1].rstrip("_")
    deadline = time.monotonic() + timeout
    states: list[str] = []
    flags: list[str] = []
    logs: list[str] = []
    while time.monotonic() < deadline:
        request = geocube.pb.operations.GetJobRequest(id=job_id, log_limit=50)
        job = geocube.geocube.GetJob(request, timeout=30).job
        logs = [str(line) for line in job.logs]
        if not states or states[-1] != job.state:
            states.append(str(job.state))
        parent = prefix.rsplit("/", 1)[0] + "/"
        flags = [f for f in storage.list(parent) if f.startswith(prefix)]
        if len(flags) >= expected and job.state in CANCEL_SETTLED:
            break
        time.sleep(0.5)
    return flags, states, logs
