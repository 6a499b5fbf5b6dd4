"""The Pub/Sub emulator through the real google-cloud-pubsub clients, on an endpoint of the run's access mode.

The clients honour ``PUBSUB_EMULATOR_HOST`` only when they are constructed, so it is set for the
construction alone: other clients of the process (and the environment) are left as they were.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any

from google.cloud import pubsub_v1


@contextlib.contextmanager
def _emulator_env(address: str) -> Iterator[None]:
    before = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = address
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = before


class PubSub:
    """Admin, publish and pull on one emulator project."""

    def __init__(self, address: str, project: str) -> None:
        self.project = project
        with _emulator_env(address):
            self.publisher: Any = pubsub_v1.PublisherClient()
            self.subscriber: Any = pubsub_v1.SubscriberClient()

    def topics(self) -> set[str]:
        found = self.publisher.list_topics(request={"project": f"projects/{self.project}"}, timeout=15)
        return {t.name.rsplit("/", 1)[-1] for t in found}

    def subscriptions(self) -> dict[str, dict[str, str]]:
        """Subscription name → its topic and push endpoint ("" for pull)."""
        found = self.subscriber.list_subscriptions(request={"project": f"projects/{self.project}"}, timeout=15)
        return {
            s.name.rsplit("/", 1)[-1]: {
                "topic": s.topic.rsplit("/", 1)[-1],
                "push_endpoint": s.push_config.push_endpoint,
            }
            for s in found
        }

    def round_trip(self, topic: str, data: bytes, *, timeout: float) -> bytes | None:
        """Publish ``data`` on ``topic`` and pull it from a subscription of ours (created, then deleted)."""
        topic_path = self.publisher.topic_path(self.project, topic)
        subscription = self.subscriber.subscription_path(self.project, f"acceptance-{topic}-{secrets.token_hex(4)}")
        self.subscriber.create_subscription(request={"name": subscription, "topic": topic_path}, timeout=15)
        try:
            self.publisher.publish(topic_path, data, origin="geocube-acceptance").result(timeout=timeout)
            response = self.subscriber.pull(request={"subscription": subscription, "max_messages": 10}, timeout=timeout)
            for received in response.received_messages:
                self.subscriber.acknowledge(
                    request={"subscription": subscription, "ack_ids": [received.ack_id]}, timeout=15
                )
                if received.message.attributes.get("origin") == "geocube-acceptance":
                    return bytes(received.message.data)
            return None
        finally:
            self.subscriber.delete_subscription(request={"subscription": subscription}, timeout=15)
