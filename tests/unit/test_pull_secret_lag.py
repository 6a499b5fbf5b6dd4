"""A pull that failed because the kubelet's Secret cache lagged (its own event says so) is not a failure yet."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import CoreV1Event, V1ObjectMeta, V1ObjectReference
from kubernetes.client.exceptions import ApiException

import fixtures.pull_lag
from fixtures.classify import Failure, classify_pod
from fixtures.errors import WaitTimeout, WorkloadFailed
from fixtures.podwatch import PodWatch
from fixtures.pull_lag import EVENT_FLUSH, PULL_SECRET_LAG, PullSecretLag, lacked_for, lag_shown
from fixtures.waits import watch_until

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
UID = "uid-1"
LACKED = "Unable to retrieve some image pull secrets (geocube-registry); attempting to pull the image may not succeed."
PULL_401 = 'Failed to pull image "10.207.0.1:5443/x:1": failed to resolve reference: 401 Unauthorized'
PULL_404 = 'Failed to pull image "10.207.0.1:5443/x:1": failed to resolve reference: not found'
BACK_OFF = 'Back-off pulling image "10.207.0.1:5443/x:1"'


def event(reason: str, message: str, last: float, first: float | None = None, uid: str = UID) -> CoreV1Event:
    return CoreV1Event(
        metadata=V1ObjectMeta(name=f"pod.{reason}"),
        involved_object=V1ObjectReference(kind="Pod", name="consolidater-x", uid=uid),
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


def test_the_lack_lasts_at_least_until_the_newest_event() -> None:
    events = [event("FailedToRetrieveImagePullSecret", LACKED, 3, first=1), event("BackOff", BACK_OFF, 9)]
    assert lacked_for(events) == 8.0
    assert lacked_for([event("Failed", PULL_401, 1)]) == 0.0


# -- the stateful judge: I/O only where the kubelet's evidence may have changed --------------------------------


class FakeCore:
    """CoreV1Api as far as the judge reads it (a pod's Events, its pull Secrets) and a pod list, counting reads."""

    def __init__(self, events: list[CoreV1Event], pods: list[dict[str, Any]] | None = None) -> None:
        self.events = events
        self.secrets = {"geocube-registry"}
        self.pods = pods or []
        self.reads: Counter[str] = Counter()

    def list_namespaced_event(self, namespace: str, field_selector: str, _request_timeout: float) -> Any:
        self.reads["events"] += 1
        return SimpleNamespace(items=list(self.events))

    def read_namespaced_secret(self, name: str, namespace: str, _request_timeout: float) -> None:
        self.reads["secrets"] += 1
        if name not in self.secrets:
            raise ApiException(status=404, reason="Not Found")

    def list_namespaced_pod(self, namespace: str, _preload_content: bool, _request_timeout: float, **_: Any) -> Any:
        listing = {"metadata": {"resourceVersion": "1"}, "items": self.pods}
        return SimpleNamespace(data=json.dumps(listing).encode())


class FakeTime:
    """The judge's clock and sleep: time passes only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(fixtures.pull_lag, "time", fake)
    return fake


def pod(reason: str = "ErrImagePull", message: str = PULL_401, uid: str = UID) -> dict[str, Any]:
    waiting = {"reason": reason, "message": message}
    return {
        "kind": "Pod",
        "metadata": {"name": "consolidater-x", "namespace": "ns", "uid": uid},
        "spec": {"imagePullSecrets": [{"name": "geocube-registry"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"name": "worker", "image": "10.207.0.1:5443/x:1", "state": {"waiting": waiting}}],
        },
    }


def failure_of(obj: dict[str, Any]) -> Failure:
    failure = classify_pod(obj, T0)
    assert failure is not None
    return failure


LAG_EVENTS = [event("FailedToRetrieveImagePullSecret", LACKED, 0), event("Failed", PULL_401, 1)]


def test_an_excuse_once_established_costs_no_io(clock: FakeTime) -> None:
    core = FakeCore(list(LAG_EVENTS))
    judge, lagging = PullSecretLag(core), pod()
    assert judge.excuses(lagging, failure_of(lagging))
    assert core.reads == {"events": 1, "secrets": 1}
    for _ in range(20):  # a PodWatch looks at every pod about once a second
        clock.now += 1
        assert judge.excuses(lagging, failure_of(lagging))
    assert core.reads == {"events": 1, "secrets": 1}


def test_the_wait_for_late_events_is_spent_once_per_pod(clock: FakeTime) -> None:
    core = FakeCore([])  # a genuine 401: the kubelet had the Secret, and says nothing of lacking it
    judge, failing = PullSecretLag(core), pod()
    assert not judge.excuses(failing, failure_of(failing))
    assert clock.slept == [EVENT_FLUSH] and core.reads["events"] == 2
    assert not judge.excuses(failing, failure_of(failing))
    assert clock.slept == [EVENT_FLUSH] and core.reads["events"] == 3  # read again, not waited for again
    other = pod(uid="uid-2")
    assert not judge.excuses(other, failure_of(other))
    assert clock.slept == [EVENT_FLUSH, EVENT_FLUSH]


def test_an_excuse_expires_once_the_kubelet_has_lacked_the_secret_for_the_bound(clock: FakeTime) -> None:
    core = FakeCore(list(LAG_EVENTS))  # the lack was 1 s old at its newest event: the excuse runs PULL_SECRET_LAG - 1
    judge, lagging = PullSecretLag(core), pod()
    assert judge.excuses(lagging, failure_of(lagging))
    clock.now += PULL_SECRET_LAG - 1.5
    assert judge.excuses(lagging, failure_of(lagging))
    assert core.reads["events"] == 1
    clock.now += 0.5
    assert not judge.excuses(lagging, failure_of(lagging))  # the events alone would still excuse it
    assert core.reads["events"] == 2


def test_a_new_pull_attempt_is_judged_on_the_kubelets_new_events(clock: FakeTime) -> None:
    core = FakeCore(list(LAG_EVENTS))
    judge, first = PullSecretLag(core), pod()
    assert judge.excuses(first, failure_of(first))
    backing_off = pod("ImagePullBackOff", BACK_OFF)
    clock.now += 5
    assert judge.excuses(backing_off, failure_of(backing_off))
    assert core.reads["events"] == 2
    core.events.append(event("Failed", PULL_401, 11, first=1))  # the retry had the Secret and still got a 401
    clock.now += 6
    retry = pod()
    assert not judge.excuses(retry, failure_of(retry))
    assert core.reads["events"] == 3 and clock.slept == []


def test_a_failure_that_is_no_pull_costs_nothing(clock: FakeTime) -> None:
    core = FakeCore(list(LAG_EVENTS))
    judge = PullSecretLag(core)
    crashing = pod("CrashLoopBackOff", "back-off 5m0s restarting failed container")
    crashing["status"]["containerStatuses"][0]["restartCount"] = 5
    assert not judge.excuses(crashing, failure_of(crashing))
    assert not judge.excuses(pod(), Failure("ErrImagePull", "Job", "setup", PULL_401))  # a pod's reason, no pod
    assert core.reads == {} and clock.slept == []


def test_a_missing_pull_secret_is_never_lag(clock: FakeTime) -> None:
    core = FakeCore(list(LAG_EVENTS))
    core.secrets = set()
    lagging = pod()
    assert not PullSecretLag(core).excuses(lagging, failure_of(lagging))


def test_without_a_client_nothing_is_excused(clock: FakeTime) -> None:
    lagging = pod()
    assert not PullSecretLag(None).excuses(lagging, failure_of(lagging))


# -- every pod wait asks it ------------------------------------------------------------------------------------


def test_a_pod_watch_excuses_the_lag_among_its_fail_on_failures(clock: FakeTime) -> None:
    core = FakeCore(list(LAG_EVENTS))
    watch = PodWatch(SimpleNamespace(core=core), "ns", "app=x")  # type: ignore[arg-type]  # never started
    watch._pods = {"consolidater-x": pod()}
    with pytest.raises(WaitTimeout):
        watch.wait_until(lambda w: False, timeout=1.5, description="never", fail_on=lambda p: classify_pod(p, T0))
    assert core.reads["events"] == 1  # looked at twice, read once


def test_a_pod_watch_still_raises_a_pull_failure_the_kubelet_did_not_excuse(clock: FakeTime) -> None:
    core = FakeCore([event("Failed", PULL_404, 1)])
    watch = PodWatch(SimpleNamespace(core=core), "ns", "app=x")  # type: ignore[arg-type]  # never started
    watch._pods = {"consolidater-x": pod(message=PULL_404)}
    with pytest.raises(WorkloadFailed, match="ErrImagePull"):
        watch.wait_until(lambda w: False, timeout=5, description="never", fail_on=lambda p: classify_pod(p, T0))
    assert clock.slept == []  # not a 401: no late event to wait for


def test_a_pod_list_watch_excuses_the_lag_through_its_own_client(clock: FakeTime) -> None:
    items = [{k: v for k, v in pod().items() if k != "kind"}]  # a list's items carry no kind
    core = FakeCore(list(LAG_EVENTS), pods=items)
    found = watch_until(
        core.list_namespaced_pod, "ns", description="the pod", timeout=5, predicate=lambda pods: bool(pods),
        fail_on=lambda p: classify_pod(p, T0),
    )  # fmt: skip
    assert list(found) == ["consolidater-x"] and core.reads["events"] == 1
    core.events = []
    with pytest.raises(WorkloadFailed, match="ErrImagePull"):
        watch_until(
            core.list_namespaced_pod, "ns", description="the pod", timeout=5, predicate=lambda pods: bool(pods),
            fail_on=lambda p: classify_pod(p, T0),
        )  # fmt: skip
