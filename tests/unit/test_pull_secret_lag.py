"""A pull that failed because the kubelet's Secret cache lagged (its own event says so) is not a failure yet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubernetes.client import CoreV1Event, V1ObjectMeta, V1ObjectReference

from fixtures.waits import PULL_SECRET_LAG, lag_shown

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
LACKED = "Unable to retrieve some image pull secrets (geocube-registry); attempting to pull the image may not succeed."
PULL_401 = 'Failed to pull image "10.207.0.1:5443/x:1": failed to resolve reference: 401 Unauthorized'


def event(reason: str, message: str, last: float, first: float | None = None) -> CoreV1Event:
    return CoreV1Event(
        metadata=V1ObjectMeta(name=f"pod.{reason}"),
        involved_object=V1ObjectReference(kind="Pod", name="consolidater-x"),
        reason=reason,
        message=message,
        first_timestamp=T0 + timedelta(seconds=first if first is not None else last),
        last_timestamp=T0 + timedelta(seconds=last),
    )


def test_a_pull_without_its_secret_in_the_same_attempt_is_lag() -> None:
    assert lag_shown([event("FailedToRetrieveImagePullSecret", LACKED, 0), event("Failed", PULL_401, 1)]) is True


def test_a_later_pull_that_had_the_secret_and_still_failed_is_a_failure() -> None:
    events = [event("FailedToRetrieveImagePullSecret", LACKED, 0), event("Failed", PULL_401, 11, first=1)]
    assert lag_shown(events) is False


def test_a_secret_the_kubelet_never_gets_is_a_failure_after_the_bound() -> None:
    lacked = event("FailedToRetrieveImagePullSecret", LACKED, PULL_SECRET_LAG + 1, first=0)
    assert lag_shown([lacked, event("Failed", PULL_401, PULL_SECRET_LAG + 1, first=1)]) is False


def test_without_the_kubelets_event_nothing_is_excused() -> None:
    assert lag_shown([event("Failed", PULL_401, 1), event("BackOff", 'Back-off pulling image "x"', 2)]) is None
