"""The scale selection: which -m selects it, what it deploys, and the pure rules of AS-SCALE-AT-MAX."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fixtures.config import Messaging, Settings, Storage, resolve
from fixtures.coverage import CATALOGUE_FILE, profile_of, suites_dir
from fixtures.deployed import AutoscalerConfig
from fixtures.embedded import EMBEDDED_AUTOSCALER, SCALE_AUTOSCALER, embedded_autoscaler, runner_params
from fixtures.podwatch import PodEvent, PodWatch
from fixtures.settings import scale_selected
from reports import catalogue
from suites.autoscaling.observed import (
    SCALING_SLACK,
    growing_update_seconds,
    scale_down_timeout,
    scale_up_timeout,
    timeline,
)
from suites.autoscaling.test_scale import GUIDE_FLAGS, guide_mismatches, tolerated

FAKE_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("markexpr", "selected"),
    [("scale", True), ("scale and autoscaling", True), ("", False), ("not scale", False), ("autoscaling", False),
     ("scale or slow", False), ("slow", False), ("scale and not slow", False)],
)  # fmt: skip
def test_only_an_expression_that_selects_by_the_scale_marker_is_the_scale_selection(
    markexpr: str, selected: bool
) -> None:
    assert scale_selected(markexpr) is selected


def test_the_scale_selection_deploys_the_guides_step_and_max_on_fake_nodes() -> None:
    params = embedded_autoscaler(scale=True)
    assert (params["AUTOSCALER_STEP"], params["AUTOSCALER_MAX"]) == ("16", "256")
    assert yaml.safe_load(params["CONSOLIDATER_NODE_SELECTOR"]) == {"geocube-acceptance/fake-node": "true"}
    [toleration] = yaml.safe_load(params["CONSOLIDATER_TOLERATIONS"])
    assert tolerated(FAKE_TAINT, [toleration])
    assert embedded_autoscaler(scale=False) == EMBEDDED_AUTOSCALER
    assert set(SCALE_AUTOSCALER) == set(EMBEDDED_AUTOSCALER)


def test_the_in_cluster_runner_carries_the_scale_selections_autoscaler_and_placement() -> None:
    scale = runner_params("geocube-run-x", "pgqueue", "local", scale=True)
    assert (scale["AUTOSCALER_STEP"], scale["AUTOSCALER_MAX"]) == ("16", "256")
    assert "CONSOLIDATER_NODE_SELECTOR" in scale and "CONSOLIDATER_TOLERATIONS" in scale
    small = runner_params("geocube-run-x", "pgqueue", "local")
    assert (small["AUTOSCALER_STEP"], small["AUTOSCALER_MAX"]) == ("3", "8")


def test_the_scale_timeouts_follow_the_autoscalers_client_rate_limit() -> None:
    guide = config()  # -update=3s, step 16: an update that creates 16 pods lasts 6.4 s (2 requests each at 5/s)
    assert growing_update_seconds(guide) == pytest.approx(6.4)
    assert scale_up_timeout(guide, 256) == pytest.approx(6.4 * (16 + 3) + SCALING_SLACK)
    assert scale_down_timeout(guide, 256) == pytest.approx(2 * 3.0 + 256 / 5 + SCALING_SLACK)
    small = config(step=3)
    assert growing_update_seconds(small) == 3.0  # -update is the longer


def test_as_scale_at_max_applies_only_to_the_scale_selection(settings: Settings) -> None:
    [entry] = [e for e in catalogue.load(suites_dir() / CATALOGUE_FILE) if e.id == "AS-SCALE-AT-MAX"]
    default = entry.for_profile(profile_of(settings))
    assert not default.applicable and "-m scale" in str(default.not_applicable_because)
    assert entry.for_profile({**profile_of(settings), "selection": "scale"}).applicable


def config(**flags: float) -> AutoscalerConfig:
    values = {**GUIDE_FLAGS, **flags}
    return AutoscalerConfig(
        workload="Deployment/consolidater-autoscaler", update_seconds=3.0, queue="consolidations",
        rc="consolidater", namespace="ns", ratio=values["ratio"], minratio=values["minratio"],
        step=int(values["step"]), maximum=int(values["maximum"]), minimum=int(values["minimum"]),
        service_account="autoscaler-service-account",
    )  # fmt: skip


def test_the_guides_values_pass_and_each_difference_is_named() -> None:
    assert guide_mismatches(config()) == []
    assert guide_mismatches(config(step=8, maximum=100)) == ["-step=8 (the guide: 16)", "-max=100 (the guide: 256)"]


def test_taints_are_tolerated_as_the_scheduler_does() -> None:
    assert not tolerated(FAKE_TAINT, [])
    assert tolerated(FAKE_TAINT, [{"operator": "Exists"}])
    assert tolerated(FAKE_TAINT, [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}])
    assert not tolerated(FAKE_TAINT, [{"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "real"}])
    assert not tolerated(FAKE_TAINT, [{**FAKE_TAINT, "operator": "Equal", "effect": "NoExecute"}])
    assert tolerated({**FAKE_TAINT, "effect": "PreferNoSchedule"}, [])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    resolved = resolve({}, {}, base_dir=tmp_path, cwd=tmp_path)
    assert (resolved.messaging, resolved.storage) == (Messaging.PGQUEUE, Storage.LOCAL)
    return resolved


def test_the_timeline_carries_both_series_at_every_point() -> None:
    """Neither line of the chart is broken by the other's points (256 pods and a sampled backlog stay readable)."""
    watch = PodWatch(None, "ns", "go-k8s-pod-rc=consolidater")  # type: ignore[arg-type]  # never started
    watch.events = [PodEvent(1.0, "ADDED", "a", "Pending"), PodEvent(2.0, "ADDED", "b", "Pending"),
                    PodEvent(5.0, "DELETED", "a", "Running")]  # fmt: skip
    points = timeline(watch, 0.5, [(0.6, 300), (3.0, 300), (4.0, 0)])
    assert [(p["t"], p["pods"], p["backlog"]) for p in points] == [
        (0.1, 0, 300), (0.5, 1, 300), (1.5, 2, 300), (2.5, 2, 300), (3.5, 2, 0), (4.5, 1, 0),
    ]  # fmt: skip
