"""DB-CAPACITY: the connections the stack needs at the autoscaler's ``-max``, against what the server allows.

A consolidater's connections are measured, not assumed: pg_stat_activity is sampled by client address while a
real job runs, and each address is mapped to the pod that holds it. Workers open connections only with pgqueue
(its own pool); the API server and the autoscaler are counted at their pools' bound, which Geocube fixes in its
source (``SetMaxOpenConns(5)`` in every ``SqlConnect``), since they may grow to it under load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from fixtures.cluster_client import KubeClient
from fixtures.deployed import AUTOSCALED_LABEL
from suites.database.limits import ConnectionLimits

# Geocube v1.0.3: every SqlConnect (the catalog's pool, pgqueue's pool) sets SetMaxOpenConns(5).
POOL_BOUND = 5
# The install guide's autoscaler: -max=256. A stack deployed with a smaller -max is also told what the guide's needs.
GUIDE_MAX = 256
SAMPLE_INTERVAL = 0.25
REQUEST_TIMEOUT = 15.0

# One row per client address of the stack's pods; the suite's own connections (port-forwards) come from the
# database pod's loopback and carry its application_name, so neither is counted as the stack's.
_BY_ADDRESS = (
    "SELECT host(client_addr), count(*) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND client_addr IS NOT NULL AND application_name NOT LIKE %s "
    "GROUP BY 1"
)


@dataclass
class ConnectionSamples:
    """The peak number of connections each pod held, by component, over the samples taken."""

    peaks: dict[str, dict[str, int]] = field(default_factory=dict)  # component -> pod -> peak
    pods: dict[str, set[str]] = field(default_factory=dict)  # component -> every pod seen, connected or not
    unknown: dict[str, int] = field(default_factory=dict)  # address of no known pod -> peak
    samples: int = 0

    def add(self, by_address: Mapping[str, int], pods: Mapping[str, tuple[str, str]]) -> None:
        """One sample: connections by client address, and address -> (component, pod name)."""
        self.samples += 1
        for component, pod in pods.values():
            self.pods.setdefault(component, set()).add(pod)
        for address, count in by_address.items():
            if address in pods:
                component, pod = pods[address]
                held = self.peaks.setdefault(component, {})
                held[pod] = max(held.get(pod, 0), count)
            else:
                self.unknown[address] = max(self.unknown.get(address, 0), count)

    def peak(self, component: str) -> int:
        """The most connections one pod of ``component`` held at once (0: none seen)."""
        return max(self.peaks.get(component, {}).values(), default=0)

    @property
    def others(self) -> int:
        """Connections from addresses of no pod of the stack (other clients of the server), at their peak."""
        return sum(self.unknown.values())


@dataclass(frozen=True)
class CapacityNeed:
    """What the stack needs at ``-max`` workers, and what the server allows the role."""

    messaging: str
    maximum: int
    per_worker: int
    workers_seen: int
    server: int
    autoscaler: int
    others: int
    limits: ConnectionLimits

    @property
    def needed(self) -> int:
        return self.at(self.maximum)

    @property
    def headroom(self) -> int:
        return self.limits.usable - self.needed

    def at(self, maximum: int) -> int:
        """Connections needed with ``maximum`` workers instead of the deployed -max."""
        return self.per_worker * maximum + self.server + self.autoscaler + self.others

    def evidence(self) -> dict[str, Any]:
        return {
            "messaging": self.messaging,
            "autoscaler -max": self.maximum,
            "connections per worker (peak measured during a real job)": self.per_worker,
            "worker pods seen during the job": self.workers_seen,
            f"API server (pool bound {POOL_BOUND} per pool)": self.server,
            "autoscaler (pool bound)": self.autoscaler,
            "other clients now (not the stack's, not the suite's)": self.others,
            "needed at -max": self.needed,
            "usable by the role": self.limits.usable,
            "headroom at -max": self.headroom,
            "worst case (every worker at its pool bound)": self._worst_case(),
            f"needed at the install guide's -max={GUIDE_MAX}": self.at(GUIDE_MAX),
        }

    def _worst_case(self) -> str:
        if self.messaging != "pgqueue":
            return "workers open no connection with Pub/Sub"
        worst = POOL_BOUND * self.maximum + self.server + self.autoscaler + self.others
        return f"{worst} ({'fits' if worst <= self.limits.usable else 'does not fit'} in {self.limits.usable})"

    def problem(self) -> str | None:
        """Why ``-max`` workers cannot all connect, with the numbers and the fixes; None when they can."""
        if self.headroom >= 0:
            return None
        limits = self.limits
        fits = (limits.usable - self.server - self.autoscaler - self.others) // max(self.per_worker, 1)
        return (
            f"at the autoscaler's -max={self.maximum} the stack needs {self.needed} connections "
            f"({self.per_worker} per worker x {self.maximum} + API server {self.server} + autoscaler {self.autoscaler}"
            f" + other clients {self.others}) but the server allows role {limits.role!r} {limits.usable} "
            f"(max_connections {limits.max_connections} - reserved {limits.reserved}"
            + (f", role limit {limits.role_limit}" if limits.role_limit >= 0 else "")
            + (f", database limit {limits.database_limit}" if limits.database_limit >= 0 else "")
            + f"): {-self.headroom} short; at most {fits} workers can connect. Fix: raise max_connections to at "
            f"least {self.needed + limits.reserved} (and any CONNECTION LIMIT of the role or database), lower "
            f"the autoscaler's -max to {fits}, or put a pooler (pgbouncer, as Geocube's production deployment "
            "does) in front of PostgreSQL."
        )


def need_of(samples: ConnectionSamples, limits: ConnectionLimits, *, messaging: str, maximum: int) -> CapacityNeed:
    """The need from what was measured: workers at their peak, the server and autoscaler at their pools' bound."""
    pools = 2 if messaging == "pgqueue" else 1  # the server's catalog pool, and pgqueue's
    return CapacityNeed(
        messaging=messaging,
        maximum=maximum,
        per_worker=samples.peak("worker"),
        workers_seen=len(samples.pods.get("worker", set())),
        server=max(POOL_BOUND * pools, samples.peak("server")),
        autoscaler=max(POOL_BOUND if messaging == "pgqueue" else 0, samples.peak("autoscaler")),
        others=samples.others,
        limits=limits,
    )


async def sample_while(
    conn: psycopg.AsyncConnection[Any],
    pods: Callable[[], Mapping[str, tuple[str, str]]],
    running: asyncio.Future[Any],
    *,
    exclude_application: str,
) -> ConnectionSamples:
    """Sample connections by pod until ``running`` ends (and once after), every ``SAMPLE_INTERVAL``.

    ``pods``: address -> (component, pod) now, read from memory (a pod watch), not from the API server.
    Addresses are mapped to pods at the end, with every pod seen: a worker may connect before its address is
    known, or be gone by the next sample.
    """
    raw: list[dict[str, int]] = []
    known: dict[str, tuple[str, str]] = {}
    while True:
        done = running.done()
        started = time.monotonic()
        cursor = await conn.execute(_BY_ADDRESS, (f"{exclude_application}%",))
        raw.append({str(address): int(count) for address, count in await cursor.fetchall()})
        known.update(pods())
        if done:
            break
        await asyncio.sleep(max(0.0, SAMPLE_INTERVAL - (time.monotonic() - started)))
    samples = ConnectionSamples()
    for by_address in raw:
        samples.add(by_address, known)
    return samples


def component_selectors(
    kube: KubeClient, namespace: str, server: str, autoscaler: str, rc: str
) -> dict[str, list[dict[str, str]]]:
    """component -> the label sets that select its pods (a pod is its component's if it has one of them)."""
    apps, core = kube.apps, kube.core

    def deployment(name: str) -> dict[str, str]:
        spec = apps.read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT).spec
        return dict(spec.selector.match_labels or {})

    replicas = core.read_namespaced_replication_controller(rc, namespace, _request_timeout=REQUEST_TIMEOUT)
    return {
        "server": [deployment(server)],
        "autoscaler": [deployment(autoscaler)],
        # The autoscaler labels the pods it creates go-k8s-pod-rc=<rc>, not with the template's labels; the RC's
        # own replicas (--consolidater-replicas) carry those.
        "worker": [{AUTOSCALED_LABEL: rc}, dict(replicas.spec.selector or {})],
    }


def pods_by_address(
    pods: Iterable[Mapping[str, Any]], selectors: Mapping[str, list[dict[str, str]]]
) -> dict[str, tuple[str, str]]:
    """Pod IP -> (component, pod name) for the ``pods`` (API objects as dicts) that one of ``selectors`` selects."""
    found: dict[str, tuple[str, str]] = {}
    for pod in pods:
        meta, address = pod.get("metadata") or {}, (pod.get("status") or {}).get("podIP")
        labels = meta.get("labels") or {}
        for component, label_sets in selectors.items():
            if address and any(wanted and wanted.items() <= labels.items() for wanted in label_sets):
                found[str(address)] = (component, str(meta.get("name")))
    return found
