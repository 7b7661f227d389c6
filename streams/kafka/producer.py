"""The worker's Kafka producer: Faust's, with every topic it writes to kept in its metadata.

aiokafka refreshes the metadata of the topics its client tracks, and only of
those once it tracks any; `send` tracks a topic only when the topic is
missing from the metadata it has. A worker's first metadata answer lists
every topic (Faust asks for all of them while it declares its own), so the
topics it then writes to stay untracked, until the worker writes a topic
that answer did not know (its first changelog batch, say): from then on every
refresh leaves the untracked topics out, and a record batch waiting for one
of them finds no leader, asks for a refresh that again leaves its topic out,
and waits until it expires (Faust: 1,200 s; leadscore:
`LEADSCORE_PRODUCER_REQUEST_TIMEOUT`, 90 s).
The worker stood still with a transition in that batch and every flush
waiting for it. `TopicTrackingProducer` tracks each topic before the first
record for it, so a refresh never drops a topic a batch waits for.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka


class TopicTrackingProducer(aiokafka.AIOKafkaProducer):  # type: ignore[misc]  # untyped
    """aiokafka's producer; every topic it sends to is tracked in its client's metadata."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._tracked: set[str] = set()

    def _track(self, topic: str) -> None:
        if topic not in self._tracked:
            self._tracked.add(topic)
            self.client.add_topic(topic)  # refreshes the metadata once, in the background

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        self._track(topic)
        return await super().send(topic, *args, **kwargs)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        self._track(topic)
        return await super().send_batch(batch, topic, partition=partition)


class TopicTrackingFaustProducer(faust_aiokafka.Producer):
    """Faust's producer over a `TopicTrackingProducer` (transactional ones too)."""

    @property
    def _producer_type(self) -> type[aiokafka.AIOKafkaProducer]:
        return TopicTrackingProducer

    @property
    def kafka(self) -> TopicTrackingProducer:
        """The aiokafka producer underneath (once started; Faust raises `NotReady`
        before): leadscore sends its records with it directly. Faust's `send` wraps each
        record in futures and callbacks that cost more than the send."""
        producer: TopicTrackingProducer = self._ensure_producer()
        return producer
