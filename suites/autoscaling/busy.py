"""Consolidaters held busy in a real job, and their termination costs as the autoscaler reads them.

A busy pod is made by a real consolidation whose input becomes a named pipe on the shared storage
volume once the server has indexed it (indexing opens the input): the consolidater that takes the task
blocks opening it (GDAL), so its ``/termination_cost`` grows for as long as the check wants. Releasing
puts the real GeoTIFF back and wakes the consolidater, which then consolidates it: the job ends DONE.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType

from fixtures.access import PodVolumeStorage
from fixtures.cluster_client import KubeClient
from fixtures.deployed import AutoscalerConfig
from fixtures.portforward import pod_http_get

# A Running pod may take a few seconds to listen; past this it is "not answering", not "starting".
ANSWER_GRACE = 20.0


class BlockingInputs:
    """``with BlockingInputs(storage, uris, data) as inputs: ...; inputs.release()``.

    Each URI holds ``data`` (a GeoTIFF) before and after; in between it is a named pipe.
    """

    def __init__(self, storage: PodVolumeStorage, uris: Iterable[str], data: bytes) -> None:
        self.storage, self.data = storage, data
        self.uris = list(uris)
        self._blocking: list[str] = []

    def __enter__(self) -> BlockingInputs:
        try:
            for uri in self.uris:
                self.storage.make_fifo(uri)
                self._blocking.append(uri)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Put the inputs back and wake every consolidater blocked on one."""
        while self._blocking:
            self.storage.replace_fifo(self._blocking.pop(), self.data)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


class CostReader:
    """Reads ``/termination_cost`` from pods where the deployed autoscaler reads it (its port and path)."""

    def __init__(self, kube: KubeClient, namespace: str, config: AutoscalerConfig) -> None:
        self.kube, self.namespace, self.config = kube, namespace, config
        self._failing_since: dict[str, float] = {}

    def read(self, pods: Iterable[str]) -> dict[str, int]:
        """Cost in ms of each pod that answered; a pod silent for longer than ANSWER_GRACE raises AssertionError."""
        costs: dict[str, int] = {}
        port, path = self.config.cost_port or 80, self.config.cost_request_path
        for pod in sorted(pods):
            try:
                body = pod_http_get(self.kube, self.namespace, pod, port, path)
                costs[pod] = int(body.strip())
                self._failing_since.pop(pod, None)
            except (ConnectionError, ValueError) as err:
                since = self._failing_since.setdefault(pod, time.monotonic())
                if time.monotonic() - since > ANSWER_GRACE:
                    raise AssertionError(
                        f"the autoscaler reads each pod's termination cost at {self.config.cost_url}, but pod {pod} "
                        f"gave no cost there for {ANSWER_GRACE:g} s: {err}. Without costs it cannot spare busy "
                        "consolidaters (upstream even crashes, index out of range, when no pod answers). Fix: "
                        "-pod.cost.port=9000 -pod.cost.path=/termination_cost, where cmd/consolidater serves it"
                    ) from err
        return costs
