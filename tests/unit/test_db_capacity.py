"""DB-CAPACITY's arithmetic: peaks by pod, the need at -max, and a failure that names the numbers and the fixes."""

from __future__ import annotations

from suites.database.capacity import GUIDE_MAX, POOL_BOUND, ConnectionSamples, need_of
from suites.database.limits import ConnectionLimits

PODS = {
    "10.0.0.2": ("server", "apiserver-a"),
    "10.0.0.3": ("autoscaler", "consolidater-autoscaler-b"),
    "10.0.0.4": ("worker", "consolidater-go-k8s-pod-rc-c"),
    "10.0.0.5": ("worker", "consolidater-go-k8s-pod-rc-d"),
}


def limits(max_connections: int = 1024, role_limit: int = -1) -> ConnectionLimits:
    return ConnectionLimits(max_connections, 3, "apiserver", role_limit, "geocube", -1, 10, 8)


def samples(*rows: dict[str, int]) -> ConnectionSamples:
    taken = ConnectionSamples()
    for row in rows:
        taken.add(row, PODS)
    return taken


def test_peaks_are_per_pod_and_unknown_addresses_are_other_clients() -> None:
    taken = samples({"10.0.0.4": 1, "10.0.0.2": 4}, {"10.0.0.4": 2, "10.0.0.5": 1, "10.9.9.9": 3})
    assert taken.peak("worker") == 2
    assert taken.peaks["worker"] == {"consolidater-go-k8s-pod-rc-c": 2, "consolidater-go-k8s-pod-rc-d": 1}
    assert taken.others == 3
    assert taken.pods["worker"] == {"consolidater-go-k8s-pod-rc-c", "consolidater-go-k8s-pod-rc-d"}
    assert taken.peak("autoscaler") == 0


def test_pgqueue_counts_the_server_and_autoscaler_at_their_pools_bound() -> None:
    need = need_of(samples({"10.0.0.4": 2, "10.0.0.2": 4}), limits(), messaging="pgqueue", maximum=256)
    assert (need.server, need.autoscaler) == (2 * POOL_BOUND, POOL_BOUND)
    assert need.needed == 2 * 256 + 10 + 5
    assert need.headroom == 1021 - need.needed
    assert need.problem() is None
    assert need.evidence()[f"needed at the install guide's -max={GUIDE_MAX}"] == need.needed


def test_pubsub_workers_need_no_connection() -> None:
    need = need_of(samples({"10.0.0.2": 2}), limits(), messaging="pubsub", maximum=256)
    assert (need.per_worker, need.server, need.autoscaler, need.needed) == (0, POOL_BOUND, 0, POOL_BOUND)
    assert "no connection" in need.evidence()["worst case (every worker at its pool bound)"]


def test_too_small_names_the_numbers_and_every_fix() -> None:
    need = need_of(samples({"10.0.0.4": 2}), limits(role_limit=200), messaging="pgqueue", maximum=600)
    problem = need.problem()
    assert problem is not None
    assert "at the autoscaler's -max=600 the stack needs 1215 connections" in problem
    assert "role limit 200" in problem and "1015 short" in problem
    assert "at most 92 workers can connect" in problem
    for fix in ("raise max_connections to at least 1218", "lower the autoscaler's -max to 92", "pgbouncer"):
        assert fix in problem


def test_pods_by_address_maps_selected_pods_with_an_address() -> None:
    from suites.database.capacity import pods_by_address

    def pod(name: str, labels: dict[str, str], ip: str | None) -> dict[str, object]:
        return {"metadata": {"name": name, "labels": labels}, "status": {"podIP": ip} if ip else {}}

    selectors = {"server": [{"app": "apiserver"}], "worker": [{"go-k8s-pod-rc": "consolidater"}, {"app": "cons"}]}
    pods = [
        pod("apiserver-1", {"app": "apiserver", "pod-template-hash": "x"}, "10.0.0.2"),
        pod("w-1", {"go-k8s-pod-rc": "consolidater"}, "10.0.0.3"),
        pod("w-2", {"app": "cons"}, "10.0.0.4"),
        pod("w-3", {"go-k8s-pod-rc": "consolidater"}, None),  # not started yet: no address to map
        pod("postgresql-1", {"app": "postgresql"}, "10.0.0.5"),  # no component's
    ]
    assert pods_by_address(pods, selectors) == {
        "10.0.0.2": ("server", "apiserver-1"),
        "10.0.0.3": ("worker", "w-1"),
        "10.0.0.4": ("worker", "w-2"),
    }


def test_an_empty_label_set_selects_nothing() -> None:
    from suites.database.capacity import pods_by_address

    pods = [{"metadata": {"name": "p", "labels": {"a": "b"}}, "status": {"podIP": "10.0.0.9"}}]
    assert pods_by_address(pods, {"worker": [{}]}) == {}
