"""The reference stack on the embedded cluster: deploys, answers, consolidates, autoscales.

One fresh namespace per (messaging, storage) pair; each pair runs the same checks. Run as root:

    sudo .venv/bin/python -m pytest tests/stack -m cluster -s
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from geocube_stack import deploy
from geocube_stack.client import GeocubeClient, JobResult
from geocube_stack.geotiff import Raster, tiff_summary, write_geotiff
from tests.stack.support import SELFTEST_OVERRIDES, DeployedStack

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(2400)]

PAIRS = [("pubsub", "local"), ("pgqueue", "local"), ("pubsub", "gs"), ("pgqueue", "gs")]
# 64 x 64 px of 10 m in UTM 31N, 320 m inside one 2560 m cell of the single-cell layout below.
RASTER = Raster(epsg=32631, origin_x=499_520, origin_y=5_001_920, pixel_size=10, width=64, height=64)
# Generous lon/lat box around the raster (only the record's AOI; cells come from the datasets' footprint).
AOI = (2.95, 45.10, 3.05, 45.20)
AUTOSCALER_LABEL = "go-k8s-pod-rc=consolidater"


@pytest.fixture
def client(deployed: DeployedStack) -> Iterator[GeocubeClient]:
    """A gRPC client to the API server through a port-forward."""
    with (
        deploy.port_forward(deployed.deployment, "service/apiserver", 8080) as port,
        GeocubeClient(f"127.0.0.1:{port}") as geocube,
    ):
        geocube.wait_ready(timeout=30)
        yield geocube


@pytest.mark.parametrize("deployed", PAIRS, indirect=True, ids=[f"{m}-{s}" for m, s in PAIRS])
class TestReferenceStack:
    def test_every_workload_ready(self, deployed: DeployedStack) -> None:
        ready = deployed.deployment.ready_after
        assert ready, "wait_ready returned without any ready workload"
        print(f"ready after first apply: {json.dumps({k: round(v, 1) for k, v in sorted(ready.items())})}")
        expected = {
            "Deployment/postgresql",
            "Deployment/apiserver",
            "Deployment/consolidater-autoscaler",
            "ReplicationController/consolidater",
        }
        expected |= {"Deployment/pubsub-emulator", "Job/pubsub-init"} if deployed.messaging == "pubsub" else set()
        expected |= {"Deployment/gcs-emulator", "Job/gcs-init"} if deployed.storage == "gs" else set()
        assert expected <= set(ready), f"missing from the ready set: {sorted(expected - set(ready))}"

    def test_database_as_the_guide_requires(self, deployed: DeployedStack) -> None:
        d = deployed.deployment
        psql = ["exec", "deploy/postgresql", "--", "psql", "-U", d.params["POSTGRES_USER"], "-d", "geocube", "-tAc"]
        assert d.kubectl(*psql, "SHOW max_connections").strip() == "1024"
        extensions = set(d.kubectl(*psql, "SELECT extname FROM pg_extension").split())
        assert {"hstore", "postgis", "btree_gist"} <= extensions
        role = d.params["DB_USER"]
        rights = d.kubectl(
            *psql,
            f"SELECT has_schema_privilege('{role}', 'geocube', 'CREATE'),"
            f" has_table_privilege('{role}', 'geocube.records', 'INSERT'),"
            f" rolsuper FROM pg_roles WHERE rolname = '{role}'",
        ).strip()
        assert rights == "f|t|f", f"role {role}: CREATE on schema | INSERT on records | superuser = {rights}"
        if deployed.messaging == "pgqueue":
            assert d.kubectl(*psql, f"SELECT has_table_privilege('{role}', 'pgq_jobs', 'DELETE')").strip() == "t"

    def test_version_through_port_forward(self, client: GeocubeClient) -> None:
        assert client.version() == "1.0.3"

    def test_consolidation_writes_a_cog(self, deployed: DeployedStack, client: GeocubeClient) -> None:
        suffix = secrets.token_hex(4)
        uri = _put_input(deployed, f"inputs/{suffix}.tif", write_geotiff(RASTER))
        job_id = client.start_consolidation(
            client.prepare_consolidation(container_uri=uri, raster=RASTER, aoi_lonlat=AOI, suffix=suffix)
        )
        result = client.wait_job(job_id, timeout=600)
        print(f"consolidation job {job_id}: {' → '.join(result.states_seen)} in {result.seconds:.1f} s")
        outputs = _ingested(deployed, f"layout-{suffix}/")
        assert outputs, f"job DONE but no file under ingestion storage for layout-{suffix}: {result.logs}"
        for name, data in outputs.items():
            tags = tiff_summary(data)
            assert "TileWidth" in tags, f"{name} is not tiled (not a COG): {tags}"
            print(f"COG {name}: {len(data)} bytes, tags {tags}")

    def test_autoscaler(self, deployed: DeployedStack, client: GeocubeClient) -> None:
        d = deployed.deployment
        if deployed.messaging == "pubsub":
            # The documented limitation: no backlog from the emulator, so no scaling, only errors.
            time.sleep(float(SELFTEST_OVERRIDES["AUTOSCALER_UPDATE"].rstrip("s")) + 2)
            logs = deploy.pod_logs(d, "app=consolidater-autoscaler")
            assert "failed autoscale" in logs, f"expected the autoscaler to report it cannot read a backlog:\n{logs}"
            assert not _autoscaled_pods(d), "the autoscaler created pods although it cannot read a backlog"
            pytest.xfail("pubsub emulator: the autoscaler cannot read the backlog (Cloud Monitoring only)")
        maximum = int(SELFTEST_OVERRIDES["AUTOSCALER_MAX"])
        suffix = secrets.token_hex(4)
        uri = _put_input(deployed, f"inputs/{suffix}.tif", write_geotiff(RASTER))
        counts: list[int] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_pods, args=(d, counts, stop), daemon=True)
        watcher.start()
        try:
            # 160 m cells: the 640 m raster covers at least 16 cells, i.e. a backlog of >= 16 tasks.
            prepared = client.prepare_consolidation(
                container_uri=uri, raster=RASTER, aoi_lonlat=AOI, suffix=suffix, cell_size=16
            )
            job_id = client.start_consolidation(prepared)
            result: JobResult = client.wait_job(job_id, timeout=900)
            print(f"multi-cell job: {' → '.join(result.states_seen)} in {result.seconds:.1f} s; pods seen {counts}")
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and (not counts or counts[-1] != 0):
                time.sleep(1)
        finally:
            stop.set()
            watcher.join(timeout=10)
        assert counts and max(counts) >= 2, f"expected several consolidater pods for the backlog; counts seen: {counts}"
        assert max(counts) <= maximum, f"more pods ({max(counts)}) than -max={maximum}"
        assert counts[-1] == 0, f"consolidater pods were not deleted once the queue was empty: {counts[-20:]}"
        assert len(_ingested(deployed, f"layout-{suffix}/")) >= 16


def _watch_pods(d: deploy.Deployment, counts: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a failed read is no observation, not "0 pods"
            counts.append(len(_autoscaled_pods(d)))
        stop.wait(1)


def _autoscaled_pods(d: deploy.Deployment) -> list[str]:
    doc = json.loads(d.kubectl("get", "pods", "-l", AUTOSCALER_LABEL, "-o", "json"))
    return [p["metadata"]["name"] for p in doc["items"] if not p["metadata"].get("deletionTimestamp")]


def _put_input(deployed: DeployedStack, name: str, data: bytes) -> str:
    """Store an input where server and consolidaters can read it; returns its Geocube URI."""
    if deployed.storage == "local":
        assert deployed.storage_dir is not None
        path = deployed.storage_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
        return f"/geocube-storage/{name}"
    bucket = deployed.deployment.params["GCS_BUCKET"]
    with deploy.port_forward(deployed.deployment, "service/gcs-emulator", 4443) as port:
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/upload/storage/v1/b/{bucket}/o?{query}",
            data=data,
            method="POST",
            headers={"Content-Type": "image/tiff"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
    return f"gs://{bucket}/{name}"


def _ingested(deployed: DeployedStack, prefix: str) -> dict[str, bytes]:
    """Every file under ``<ingestion storage>/<prefix>``, by name."""
    if deployed.storage == "local":
        assert deployed.storage_dir is not None
        root = deployed.storage_dir / "ingestion"
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root, prefix).rglob("*.tif"))}
    bucket = deployed.deployment.params["GCS_BUCKET"]
    found: dict[str, bytes] = {}
    with deploy.port_forward(deployed.deployment, "service/gcs-emulator", 4443) as port:
        base = f"http://127.0.0.1:{port}/storage/v1/b/{bucket}/o"
        query = urllib.parse.urlencode({"prefix": f"ingestion/{prefix}"})
        with urllib.request.urlopen(f"{base}?{query}", timeout=30) as answer:
            items = json.load(answer).get("items", [])
        for item in items:
            quoted = urllib.parse.quote(item["name"], safe="")
            with urllib.request.urlopen(f"{base}/{quoted}?alt=media", timeout=30) as answer:
                found[item["name"]] = answer.read()
    return found
