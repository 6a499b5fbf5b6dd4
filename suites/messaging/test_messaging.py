"""The events and consolidations queues: they exist, carry messages, drive real jobs, survive garbage.

The profile is read from the deployed API server (``-pgqConnection`` wins, else ``-project``): the
same requirement is checked in the form each messaging system allows.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from fixtures.access import Database, Storage, transaction
from fixtures.checks import Consolidation, run_consolidation
from fixtures.config import Settings
from fixtures.deployed import ServerConfig
from fixtures.journal import DropQueueRows
from fixtures.portforward import StackEndpoints
from fixtures.stack import Stack
from geocube_stack.client import GeocubeClient
from suites.messaging.pubsub import PubSub

pytestmark = pytest.mark.messaging

PROBE = b"geocube-acceptance transport probe"
GARBAGE = b"\x00 not a gob-encoded Geocube event \xff"


@pytest.fixture(scope="module")
def pubsub(stack_endpoints: StackEndpoints, deployed_server: ServerConfig) -> PubSub | None:
    """Pub/Sub admin, publisher and subscriber clients of the emulator (None with pgqueue)."""
    if deployed_server.messaging != "pubsub":
        return None
    host, _, port = deployed_server.pubsub_emulator_host.rpartition(":")
    endpoint = stack_endpoints.get(host.split(".")[0], int(port or 8085))
    return PubSub(endpoint.address, deployed_server.pubsub_project)


@pytest.mark.requirement("MSG-QUEUES")
def test_queues_exist(deployed_server: ServerConfig, database: Database, pubsub: PubSub | None, evidence: Any) -> None:
    events, consolidations = deployed_server.events_queue, deployed_server.consolidations_queue
    if pubsub is None:
        with transaction(database) as cur:
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'pgq_jobs' ORDER BY 1")
            columns = [r[0] for r in cur.fetchall()]
        expected = ["created_at", "data", "error", "id", "queue_name", "ran_at", "retry_waits", "run_after"]
        evidence.add("pgq_jobs columns", columns)
        assert columns == expected, f"pgq_jobs has columns {columns}, pgqueue needs {expected}"
        return
    topics = pubsub.topics()
    subscriptions = pubsub.subscriptions()
    evidence.add("topics", sorted(topics))
    evidence.add("subscriptions", subscriptions)
    missing = [t for t in (events, consolidations) if t not in topics]
    assert not missing, f"topics {missing} do not exist in project {pubsub.project} (topics: {sorted(topics)})"
    pull = subscriptions.get(consolidations)
    assert pull is not None and pull["topic"] == consolidations, (
        f"no subscription {consolidations!r} on topic {consolidations!r}: consolidaters pull their orders from it "
        f"(subscriptions: {subscriptions})"
    )
    pushes = [s for s in subscriptions.values() if s["topic"] == events and s["push_endpoint"]]
    assert pushes, (
        f"no push subscription on topic {events!r}: job events never reach the API server. Fix: create one "
        "pushing to http://<apiserver service>:8080/push"
    )
    endpoints = [s["push_endpoint"] for s in pushes]
    assert any(e.startswith("http://apiserver") and e.endswith("/push") for e in endpoints), (
        f"the events push subscription targets {endpoints}, not the API server's /push"
    )


@pytest.mark.requirement("MSG-TRANSPORT")
def test_messages_are_delivered(
    deployed_server: ServerConfig, database: Database, pubsub: PubSub | None, evidence: Any
) -> None:
    queues = (deployed_server.events_queue, deployed_server.consolidations_queue)
    if pubsub is None:
        # The consumers' own query (btubbs/pgq getNextJob) takes our message first; rolled back, never consumed.
        with transaction(database) as cur:
            for queue in queues:
                cur.execute(
                    "INSERT INTO pgq_jobs (queue_name, data, run_after, retry_waits) "
                    "VALUES (%s, %s, now() - interval '1 year', '{}') RETURNING id",
                    (queue, PROBE),
                )
                sent = (cur.fetchone() or (None,))[0]
                cur.execute(
                    "SELECT id, data FROM pgq_jobs WHERE queue_name = %s AND run_after < now() AND ran_at IS NULL "
                    "ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED",
                    (queue,),
                )
                got = cur.fetchone()
                assert got is not None and got[0] == sent and bytes(got[1]) == PROBE, (
                    f"queue {queue!r}: the job just enqueued (id {sent}) was not the next one a worker takes: {got}"
                )
        evidence.add("delivered", {q: "enqueued and taken by the worker query (rolled back)" for q in queues})
        return
    delays = {}
    for queue in queues:
        started = time.monotonic()
        got = pubsub.round_trip(queue, PROBE, timeout=30)
        delays[queue] = round(time.monotonic() - started, 3)
        assert got == PROBE, f"topic {queue!r}: published {PROBE!r}, the test subscription received {got!r}"
    evidence.add("delivery seconds", delays)


@pytest.mark.slow
@pytest.mark.prerequisite("MSG-TRANSPORT")
@pytest.mark.requirement("MSG-MALFORMED")
def test_malformed_message_does_not_block(
    deployed_stack: Stack,
    deployed_server: ServerConfig,
    database: Database,
    stack_endpoints: StackEndpoints,
    geocube: GeocubeClient,
    stack_storage: Storage,
    geocube_settings: Settings,
    evidence: Any,
) -> None:
    if deployed_server.messaging == "pubsub":
        endpoint = stack_endpoints.get("apiserver", 8080)
        body = json.dumps({"message": {"data": base64.b64encode(GARBAGE).decode()}}).encode()
        status = _post(endpoint.url(path="/push"), body)
        evidence.add("/push answer to a malformed event", status)
        assert status == 200, (
            f"the API server answered {status} to a malformed pushed event: Pub/Sub redelivers anything but 2xx, "
            "so the garbage would be retried forever"
        )
    else:
        outcome = _pgqueue_garbage(deployed_stack, database, deployed_server.events_queue, timeout=60)
        evidence.add("malformed pgqueue event", outcome)
    job = run_consolidation(geocube, stack_storage, deployed_server, timeout=geocube_settings.timeouts.wait)
    evidence.add("job after the malformed message", {"states": list(job.job.states_seen), "seconds": job.job.seconds})


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _pgqueue_garbage(stack: Stack, database: Database, queue: str, *, timeout: float) -> str:
    """Enqueue garbage on ``queue``; the consumer must take it within ``timeout`` (done, failed or rescheduled)."""
    with stack.changes(DropQueueRows(queue, GARBAGE.hex())):  # journaled: a SIGKILL leaves no garbage behind
        return _garbage_taken(database, queue, timeout=timeout)


def _garbage_taken(database: Database, queue: str, *, timeout: float) -> str:
    """Insert the garbage and follow its row until a consumer took it."""
    with database.connect() as conn:
        row = conn.execute(
            "INSERT INTO pgq_jobs (queue_name, data, run_after, retry_waits) VALUES (%s, %s, now(), '{}') RETURNING id",
            (queue, GARBAGE),
        ).fetchone()
        conn.commit()
    job_id = row[0] if row else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = database.scalar(
            "SELECT CASE WHEN ran_at IS NOT NULL THEN 'ran: ' || coalesce(error, 'no error') "
            "WHEN run_after > now() THEN 'rescheduled' ELSE 'pending' END FROM pgq_jobs WHERE id = %s",
            job_id,
        )
        if state is None:
            return "consumed (row deleted)"
        if state != "pending":
            return str(state)
        time.sleep(0.5)
    pytest.fail(
        f"a malformed message on queue {queue!r} was still pending after {timeout:g} s: nothing consumes the queue",
        pytrace=False,
    )


@pytest.mark.prerequisite("MSG-TRANSPORT")
@pytest.mark.requirement("MSG-APP-PATH")
def test_real_job_advances_through_the_queues(consolidation: Consolidation, evidence: Any) -> None:
    states = list(consolidation.job.states_seen)
    evidence.add("job", consolidation.job.job_id)
    evidence.add("states seen", states)
    evidence.add("seconds to DONE", round(consolidation.job.seconds, 2))
    assert states[-1] == "DONE", f"the job ended in {states[-1]} (states seen: {states})"
