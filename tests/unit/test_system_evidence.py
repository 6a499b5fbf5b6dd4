"""What the stack said while a check ran: error lines, ends of containers, Warning events, the first cause."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from fixtures.system_evidence import Said, error_text, errors_since, first_cause, gather, stamped, summary

pytest_plugins = ["pytester"]

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
AUTOSCALER_LOG = """\
2026-11-30T11:59:50.100000000Z {"severity":"info","message":"starting autoscaler with refresh 5s"}
2026-11-30T11:59:55.000000001Z {"severity":"error","message":"failed autoscale","error":"no credentials"}
2026-11-30T12:00:05.000000001Z {"severity":"error","message":"failed autoscale","error":"no credentials"}
2026-11-30T12:00:07.5Z {"severity":"error","message":"failed autoscale","error":"pods is forbidden: cannot create pods"}
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"severity":"info","message":"Geocube v1.0.3"}', None),
        ('{"severity":"fatal","message":"exit on error","error":"Subscription does not exist"}',
         "fatal: exit on error: Subscription does not exist"),
        ('{"level":"error","msg":"boom"}', "error: boom"),
        ("panic: runtime error: index out of range [3]", "panic: runtime error: index out of range [3]"),
        ("2026-11-30 12:00:01 UTC [42] ERROR:  permission denied for table pgq_jobs",
         "2026-11-30 12:00:01 UTC [42] ERROR:  permission denied for table pgq_jobs"),
        ("listening on port 8080", None),
        ("{not json", None),
    ],
)  # fmt: skip
def test_error_text_knows_json_severities_and_plain_error_lines(line: str, expected: str | None) -> None:
    assert error_text(line) == expected


def test_a_kubelet_timestamp_with_nanoseconds_is_read() -> None:
    assert stamped("2026-11-30T12:00:07.123456789Z hello") == (datetime(2026, 11, 30, 12, 0, 7, 123456, UTC), "hello")
    assert stamped("no stamp") is None


def test_a_message_said_before_the_check_is_background_and_never_the_cause() -> None:
    said = errors_since(AUTOSCALER_LOG, T0, "autoscaler (pod a)", geocube=True)
    assert [(s.text, s.background) for s in said] == [
        ("error: failed autoscale: no credentials", True),
        ("error: failed autoscale: pods is forbidden: cannot create pods", False),
    ]
    cause = first_cause(said)
    assert cause is not None and "forbidden" in cause.text


def test_a_geocube_component_is_the_first_cause_before_anything_else() -> None:
    postgres = Said(T0, "postgres (pod db)", "ERROR: permission denied", geocube=False)
    server = Said(T0.replace(second=5), "apiserver (pod s)", "error: cannot open", geocube=True)
    assert first_cause([postgres, server]) == server
    assert first_cause([postgres]) == postgres
    assert first_cause([Said(T0, "x", "y", geocube=True, background=True)]) is None


def test_the_summary_folds_repeats_and_is_bounded() -> None:
    repeated = [Said(T0.replace(second=s), f"autoscaler (pod p{s})", f"error: tick {s}", True) for s in range(40)]
    lines = summary(repeated)
    assert lines == ["12:00:00 autoscaler (pod p0): error: tick 0 (x40)"]
    distinct = [Said(T0.replace(second=s), "c", "error " + "x" * s, True) for s in range(30)]
    assert summary(distinct)[-1] == "… 5 more; every log is in the check's diagnostics"


def fake_kube(log: str) -> Any:
    ended = SimpleNamespace(
        exit_code=1, reason="Error", message="cl.process: ps.pull: Subscription does not exist\n",
        finished_at=T0.replace(second=9),
    )  # fmt: skip
    status = SimpleNamespace(
        name="consolidater",
        state=SimpleNamespace(waiting=None, terminated=None),
        last_state=SimpleNamespace(terminated=ended),
    )
    pod = SimpleNamespace(
        metadata=SimpleNamespace(name="consolidater-x"),
        status=SimpleNamespace(init_container_statuses=None, container_statuses=[status]),
    )
    event = SimpleNamespace(
        type="Warning",
        reason="FailedCreate",
        message="pods is forbidden",
        count=3,
        last_timestamp=T0.replace(second=2),
        event_time=None,
        first_timestamp=None,
        involved_object=SimpleNamespace(kind="ReplicationController", name="consolidater"),
    )
    old = SimpleNamespace(**{**vars(event), "last_timestamp": T0.replace(hour=11)})
    core = SimpleNamespace(
        list_namespaced_pod=lambda ns, **kw: SimpleNamespace(items=[pod]),
        read_namespaced_pod_log=lambda name, ns, **kw: log,
        list_namespaced_event=lambda ns, **kw: SimpleNamespace(items=[event, old]),
    )
    return SimpleNamespace(core=core)


def test_gather_reads_logs_ends_and_warning_events_since_the_start() -> None:
    said = gather(fake_kube(AUTOSCALER_LOG), "ns", T0)
    texts = [s.text for s in said]
    assert "exited with code 1 (Error): cl.process: ps.pull: Subscription does not exist" in texts
    assert "FailedCreate: pods is forbidden (x3)" in texts
    assert sum("FailedCreate" in t for t in texts) == 1  # the event from before the check is not there
    assert all(s.at >= T0 for s in said)


def test_a_failed_check_gets_the_first_cause_in_its_message(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from types import SimpleNamespace
        from fixtures.diagnostics import STACK_KEY
        from reports.masking import Masker
        from tests.unit.test_system_evidence import fake_kube

        LOG = '2099-01-01T00:00:00Z {"severity":"error","message":"cannot read","error":"gs://b/x: no such bucket"}\\n'

        @pytest.fixture
        def deployed_stack(request):
            stack = SimpleNamespace(kube=fake_kube(LOG), namespace="ns", masker=Masker())
            request.session.stash[STACK_KEY] = stack
            return stack
        """
    )
    pytester.makepyfile(
        """
        def test_waits(deployed_stack):
            assert False, "timed out waiting for the job"

        def test_passes(deployed_stack):
            pass
        """
    )
    result = pytester.runpytest("-p", "fixtures.system_evidence", "-p", "no:asyncio", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*what the stack said while the check ran*",
            "*consolidater (pod consolidater-x): error: cannot read: gs://b/x: no such bucket*",
        ]
    )
    recorded = pytester.inline_run("-p", "fixtures.system_evidence", "-p", "no:asyncio", "-p", "no:cacheprovider")
    [failure] = recorded.getfailures()
    message = failure.longrepr.reprcrash.message  # what the sign-off report shows as the check's failure
    assert message.startswith("AssertionError: timed out waiting for the job")
    assert "The stack said meanwhile: 00:00:00 consolidater (pod consolidater-x): error: cannot read" in message
