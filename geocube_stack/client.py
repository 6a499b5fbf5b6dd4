"""A thin gRPC client for the checks: ``Version``, indexing, reading back with ``GetCube``, consolidating.

The scenario is the one GEOCUBE.md lists: CreateAOI → CreateRecords → CreateVariable →
InstantiateVariable → ConfigConsolidation → IndexDatasets → CreateLayout → Consolidate(async) → GetJob
until ``DONE``; and the user's read path, ``GetCube`` of the indexed (or consolidated) records on the
inputs' own grid. Names carry a caller-chosen suffix so several scenarios can share one catalog.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from geocube_stack.errors import StackError
from geocube_stack.geotiff import Raster
from geocube_stack.protos import Stubs, ensure_stubs

# Terminal job states (GEOCUBE.md): success, and the failures a consolidation can end in.
DONE = "DONE"
FAILED_STATES = frozenset(
    {
        "FAILED",
        "CONSOLIDATIONFAILED",
        "INITIALISATIONFAILED",
        "ABORTED",
        "CANCELLATIONFAILED",
        "DELETIONFAILED",
        "ROLLBACKFAILED",
    }
)
_EXISTING_AOI = re.compile(r"AOI with id: ([0-9a-f-]{36})")
# Geocube's name for mucog's default pattern (R=records, B=bands, Z=zoom levels, T=tiles).
INTERLACING_PATTERN = "Z=0>T>R>B;Z=1:>R>T>B"


@dataclass(frozen=True)
class PreparedConsolidation:
    """Indexed inputs (one record each) and their layout, ready for Consolidate (names carry ``suffix``)."""

    suffix: str
    instance_id: str
    record_ids: tuple[str, ...]

    @property
    def record_id(self) -> str:
        """The first record (a single-input scenario has only that one)."""
        return self.record_ids[0]

    @property
    def layout(self) -> str:
        return f"layout-{self.suffix}"


@dataclass(frozen=True)
class JobResult:
    """A finished job: its id, final state, the states seen on the way and its logs."""

    job_id: str
    state: str
    states_seen: tuple[str, ...]
    logs: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class CubeImage:
    """One image of a GetCube answer: the records it was made of, its shape and its raw pixels (or an error)."""

    record_ids: tuple[str, ...]
    shape: tuple[int, int, int]
    dtype: str
    data: bytes
    error: str


class GeocubeClient:
    """Blocking client over an insecure (h2c) channel to ``target`` (``host:port``)."""

    def __init__(self, target: str, stubs: Stubs | None = None, *, timeout: float = 30) -> None:
        self.target = target
        self.stubs = stubs or ensure_stubs()
        self.channel = grpc.insecure_channel(target)
        self.timeout = timeout
        self.pb: Any = _Modules(self.stubs)
        self.geocube: Any = self.stubs.module("geocube_pb2_grpc").GeocubeStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GeocubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the channel connects (raises StackError with the gRPC state otherwise)."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise StackError(f"the gRPC channel did not become ready within {timeout:.0f} s") from exc

    def version(self) -> str:
        response = self.geocube.Version(self.pb.version.GetVersionRequest(), timeout=self.timeout)
        return str(response.Version)

    def prepare_consolidation(
        self,
        *,
        container_uri: str,
        raster: Raster,
        aoi_lonlat: tuple[float, float, float, float],
        suffix: str,
        cell_size: int = 256,
    ) -> PreparedConsolidation:
        """CreateAOI … CreateLayout: everything before Consolidate. IndexDatasets opens the input (GDAL)."""
        return self.prepare_records(
            container_uris=[container_uri], raster=raster, aoi_lonlat=aoi_lonlat, suffix=suffix, cell_size=cell_size
        )

    def prepare_records(
        self,
        *,
        container_uris: list[str],
        raster: Raster,
        aoi_lonlat: tuple[float, float, float, float],
        suffix: str,
        cell_size: int = 256,
    ) -> PreparedConsolidation:
        """One record per input (a day apart), all indexed in one variable's instance, and one layout over them."""
        pb, t = self.pb, self.timeout
        lon0, lat0, lon1, lat1 = aoi_lonlat
        ring = [(lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1), (lon0, lat0)]
        aoi = pb.records.AOI(
            polygons=[
                pb.records.Polygon(
                    linearrings=[pb.records.LinearRing(points=[pb.records.Coord(lon=x, lat=y) for x, y in ring])]
                )
            ]
        )
        aoi_id = self._create_aoi(aoi)
        records = []
        for index in range(len(container_uris)):
            name = f"record-{suffix}" if index == 0 else f"record-{suffix}-{index}"
            record = pb.records.NewRecord(name=name, aoi_id=aoi_id, tags={"source": "geocube-stack"})
            record.time.FromSeconds(1_700_000_000 + 86_400 * index)
            records.append(record)
        record_ids = tuple(
            str(i) for i in self.geocube.CreateRecords(pb.records.CreateRecordsRequest(records=records), timeout=t).ids
        )
        dformat = pb.dataformat.DataFormat(dtype=pb.dataformat.DataFormat.UInt8, no_data=0, min_value=0, max_value=255)
        # One unnamed band: Geocube requires the list to be non-empty (names only for multi-band variables).
        variable = pb.variables.Variable(
            name=f"variable-{suffix}", unit="dn", dformat=dformat, bands=[""], resampling_alg=pb.variables.NEAR
        )
        variable_id = self.geocube.CreateVariable(pb.variables.CreateVariableRequest(variable=variable), timeout=t).id
        instance_id = self.geocube.InstantiateVariable(
            pb.variables.InstantiateVariableRequest(variable_id=variable_id, instance_name=f"instance-{suffix}"),
            timeout=t,
        ).instance.id
        params = pb.operations.ConsolidationParams(
            dformat=dformat,
            exponent=1,
            resampling_alg=pb.variables.NEAR,
            compression=pb.operations.ConsolidationParams.NO,
        )
        self.geocube.ConfigConsolidation(
            pb.operations.ConfigConsolidationRequest(variable_id=variable_id, consolidation_params=params), timeout=t
        )
        for record_id, uri in zip(record_ids, container_uris, strict=True):
            dataset = pb.operations.Dataset(
                record_id=record_id,
                instance_id=instance_id,
                bands=[1],
                dformat=dformat,
                real_min_value=0,
                real_max_value=255,
                exponent=1,
            )
            container = pb.operations.Container(uri=uri, managed=False, datasets=[dataset])
            self.geocube.IndexDatasets(pb.operations.IndexDatasetsRequest(container=container), timeout=t)
        block = min(256, cell_size)
        layout = pb.layouts.Layout(
            name=f"layout-{suffix}",
            grid_flags=[],
            grid_parameters={
                "grid": "regular",
                "crs": f"epsg:{raster.epsg}",
                "resolution": str(raster.pixel_size),
                "cell_size": str(cell_size),
            },
            block_x_size=block,
            block_y_size=block,
            max_records=1000,
            overviews_min_size=0,
            interlacing_pattern=INTERLACING_PATTERN,
        )
        self.geocube.CreateLayout(pb.layouts.CreateLayoutRequest(layout=layout), timeout=t)
        return PreparedConsolidation(suffix=suffix, instance_id=instance_id, record_ids=record_ids)

    def get_cube(self, instance_id: str, record_ids: list[str], raster: Raster) -> list[CubeImage]:
        """GetCube of each record on ``raster``'s own grid (CRS, geotransform, size), uncompressed, as users read."""
        pb = self.pb
        x0, y0 = raster.origin_x, raster.origin_y
        request = pb.catalog.GetCubeRequest(
            records=pb.records.RecordIdList(ids=record_ids),
            instances_id=[instance_id],
            crs=f"epsg:{raster.epsg}",
            pix_to_crs=pb.layouts.GeoTransform(a=x0, b=raster.pixel_size, c=0, d=y0, e=0, f=-raster.pixel_size),
            size=pb.layouts.Size(width=raster.width, height=raster.height),
            compression_level=-3,
            format=pb.catalog.Raw,
            protocol_v11x=True,
        )
        images: list[CubeImage] = []
        header: Any = None
        parts: list[bytes] = []

        def finish() -> None:
            if header is None:
                return
            data = b"".join(parts)
            if header.compression and data:
                data = zlib.decompress(data, -15)  # raw DEFLATE (RFC 1951)
            shape = (header.shape.dim1, header.shape.dim2, header.shape.dim3)
            dtype = pb.dataformat.DataFormat.Dtype.Name(header.dtype)
            records = tuple(str(r.id) for r in header.grouped_records.records)
            images.append(CubeImage(records, shape, dtype, data, header.error))

        for response in self.geocube.GetCube(request, timeout=max(self.timeout, 120)):
            kind = response.WhichOneof("response")
            if kind == "header":
                finish()
                header, parts = response.header, [response.header.data]
            elif kind == "chunk" and response.chunk.data:
                parts.append(response.chunk.data)
        finish()
        return images

    def start_consolidation(self, prepared: PreparedConsolidation) -> str:
        """Consolidate (asynchronous) what :meth:`prepare_consolidation` indexed; returns the job id."""
        pb = self.pb
        request = pb.operations.ConsolidateRequest(
            job_name=f"job-{prepared.suffix}",
            instance_id=prepared.instance_id,
            layout_name=prepared.layout,
            execution_level=pb.operations.ExecutionAsynchronous,
            records=pb.records.RecordIdList(ids=list(prepared.record_ids)),
        )
        return str(self.geocube.Consolidate(request, timeout=self.timeout).job_id)

    def _create_aoi(self, aoi: Any) -> str:
        """CreateAOI, or the id of the identical AOI that exists already (Geocube answers ALREADY_EXISTS)."""
        try:
            return str(self.geocube.CreateAOI(self.pb.records.CreateAOIRequest(aoi=aoi), timeout=self.timeout).id)
        except grpc.RpcError as err:
            found = _EXISTING_AOI.search(str(err.details())) if err.code() == grpc.StatusCode.ALREADY_EXISTS else None
            if found is None:
                raise
            return found.group(1)

    def wait_job(
        self, job_id: str, *, timeout: float = 300, interval: float = 1.0, on_poll: Callable[[str], None] | None = None
    ) -> JobResult:
        """Poll GetJob until DONE; raises StackError on a failure state or timeout (with the job's logs)."""
        progress = JobProgress(job_id, timeout)
        while not progress.expired():
            try:
                request = self.pb.operations.GetJobRequest(id=job_id, log_limit=50)
                job = self.geocube.GetJob(request, timeout=self.timeout)
            except grpc.RpcError as exc:  # no observation this round
                if on_poll:
                    on_poll(f"GetJob failed: {exc.code()}")
                time.sleep(interval)
                continue
            if on_poll:
                on_poll(job.job.state)
            result = progress.observe(job.job)
            if result is not None:
                return result
            time.sleep(interval)
        raise progress.timed_out()

    def aio(self) -> AsyncGeocubeClient:
        """An asyncio client of the same server (grpc.aio), for checks that wait on a job while doing other work."""
        return AsyncGeocubeClient(self.target, self.stubs, timeout=self.timeout)


class AsyncGeocubeClient:
    """The asyncio twin of :class:`GeocubeClient` (``grpc.aio``) for what a check awaits beside other work.

    Only waiting on a job: a check that samples the database while a consolidation runs keeps both in one event
    loop instead of a thread. ``async with client.aio() as aio: await aio.wait_job(job_id)``.
    """

    def __init__(self, target: str, stubs: Stubs, *, timeout: float = 30) -> None:
        self.stubs = stubs
        self.channel = grpc.aio.insecure_channel(target)
        self.timeout = timeout
        self.pb: Any = _Modules(stubs)
        self.geocube: Any = stubs.module("geocube_pb2_grpc").GeocubeStub(self.channel)

    async def __aenter__(self) -> AsyncGeocubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()

    async def wait_job(self, job_id: str, *, timeout: float = 300, interval: float = 1.0) -> JobResult:
        """:meth:`GeocubeClient.wait_job`, awaiting GetJob and the pauses between its calls."""
        progress = JobProgress(job_id, timeout)
        while not progress.expired():
            try:
                job = await self.geocube.GetJob(
                    self.pb.operations.GetJobRequest(id=job_id, log_limit=50), timeout=self.timeout
                )
            except grpc.RpcError:  # no observation this round (grpc.aio's AioRpcError is one)
                await asyncio.sleep(interval)
                continue
            result = progress.observe(job.job)
            if result is not None:
                return result
            await asyncio.sleep(interval)
        raise progress.timed_out()


class JobProgress:
    """One wait for a job, whichever client polls it: the states seen, its end, and the errors that say why."""

    def __init__(self, job_id: str, timeout: float) -> None:
        self.job_id, self.timeout = job_id, timeout
        self.started = time.monotonic()
        self.seen: list[str] = []
        self.last: Any = None

    def expired(self) -> bool:
        return time.monotonic() - self.started >= self.timeout

    def observe(self, job: Any) -> JobResult | None:
        """Record one GetJob answer: the result once DONE, None while it runs; StackError for a failure state."""
        self.last = job
        if not self.seen or self.seen[-1] != job.state:
            self.seen.append(job.state)
        if job.state == DONE:
            return JobResult(self.job_id, job.state, tuple(self.seen), tuple(job.logs), time.monotonic() - self.started)
        if job.state in FAILED_STATES:
            raise StackError(
                f"job {self.job_id} ended in {job.state} (states seen: {self.seen}); logs:\n  " + "\n  ".join(job.logs)
            )
        return None

    def timed_out(self) -> StackError:
        logs = "\n  ".join(self.last.logs) if self.last is not None else "(GetJob never answered)"
        return StackError(
            f"job {self.job_id} did not reach DONE within {self.timeout:.0f} s; states seen: {self.seen}; "
            f"logs:\n  {logs}"
        )


class _Modules:
    """``pb.geocube`` → ``geocube_pb2`` etc., imported lazily from the generated stubs."""

    def __init__(self, stubs: Stubs) -> None:
        self._stubs = stubs

    def __getattr__(self, name: str) -> Any:
        return self._stubs.module(f"{name}_pb2")
