"""The autoscaler model the autoscaling checks judge against (qbas.Autoscale of Geocube v1.0.3), without a cluster."""

from __future__ import annotations

import dataclasses

import pytest

from fixtures.deployed import AutoscalerConfig
from suites.autoscaling.test_autoscaling import busy_scenario

# The reference stack's embedded flags: -ratio=1 -minratio=1 -step=3 -max=8 -min=0.
EMBEDDED = AutoscalerConfig(
    workload="Deployment/consolidater-autoscaler",
    update_seconds=5,
    queue="consolidations",
    rc="consolidater",
    namespace="ns",
    ratio=1,
    minratio=1,
    step=3,
    maximum=8,
    minimum=0,
    service_account="autoscaler",
    cost_path="/termination_cost",
    cost_port=9000,
)


def config(**changes: object) -> AutoscalerConfig:
    return dataclasses.replace(EMBEDDED, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "backlog", "active", "expected"),
    [
        ({}, 10, 0, 3),  # grows by at most step
        ({}, 10, 6, 8),  # never above max
        ({}, 2, 5, 2),  # shrinks to the backlog within one step
        ({}, 2, 8, 5),  # but by at most step while work is left
        ({}, 0, 8, 0),  # no work: everything goes at once, whatever the step
        ({"minimum": 2}, 0, 5, 2),  # down to min
        ({"ratio": 10, "minratio": 0}, 5, 0, 1),  # cmd/autoscaler's defaults: one pod per 10 jobs
        ({"ratio": 10, "minratio": 0}, 5, 1, 1),  # under the ratio: no change
        ({"ratio": 10, "minratio": 0}, 30, 1, 3),
        ({"ratio": 2, "minratio": 2}, 2, 8, 5),  # below minratio: ceil(2/2)=1 pod, by one step (8 -> 5)
        ({}, 20, 10, 10),  # above max already: kept while the backlog is larger
    ],
)
def test_next_size_follows_qbas(changes: dict[str, object], backlog: int, active: int, expected: int) -> None:
    assert config(**changes).next_size(backlog, active) == expected


def test_settle_applies_updates_until_nothing_changes() -> None:
    assert EMBEDDED.settle(10, 0) == 8
    assert EMBEDDED.settle(2, 8) == 2
    assert config(ratio=2, minratio=2).settle(2, 8) == 1


def test_flags_qbas_rejects_are_named() -> None:
    assert EMBEDDED.rejected() == []
    assert config(minratio=2).rejected() == ["-minratio=2 must be <= -ratio=1"]
    assert config(maximum=1, minimum=2).rejected() == ["-max=1 must be >= -min=2"]


def test_cost_url_is_where_the_autoscaler_asks() -> None:
    assert EMBEDDED.cost_url == "http://<pod IP>:9000/termination_cost"
    assert config(cost_port=0, cost_path="cost").cost_url == "http://<pod IP>/cost"


def test_busy_scenario_leaves_idle_pods_beside_the_busy_ones() -> None:
    busy, held = busy_scenario(EMBEDDED)
    assert (busy, held) == (2, 3)
    assert EMBEDDED.settle(busy + held, 0) == 5
    assert busy_scenario(config(maximum=2)) == (1, 1)


def test_busy_scenario_is_incomplete_when_the_load_would_be_unbounded() -> None:
    with pytest.raises(pytest.skip.Exception, match="more than 40 queued jobs"):
        busy_scenario(config(ratio=10, minratio=0))
    with pytest.raises(pytest.skip.Exception, match="never shrinks"):
        busy_scenario(config(maximum=1))
