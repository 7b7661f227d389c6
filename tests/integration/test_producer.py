"""The worker's producer keeps every topic it writes to in its metadata (`streams.kafka.producer`).

The scenario the worker ran into: the producer learns a topic from an
all-topics metadata answer and sends a record to it; before the record's
batch goes out, the producer starts to track another topic. aiokafka's own
producer then refreshes only the tracked topic, forgets the first one, and
the batch waits for a leader until it expires (here after 3 s). The first
test pins that behaviour of aiokafka (when it changes, `streams.kafka.producer`
can go); the second shows the worker's producer delivering the batch.
"""

from __future__ import annotations

import asyncio
import uuid

import aiokafka
import pytest
from aiokafka.errors import KafkaError
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from streams.kafka.producer import TopicTrackingProducer
from tests.integration.kafka_server import KafkaServer

BATCH_EXPIRES_MS = 3_000


def test_aiokafka_forgets_a_topic_it_learnt_untracked(kafka: KafkaServer) -> None:
    with pytest.raises(KafkaError):
        asyncio.run(_send_then_track_another(aiokafka.AIOKafkaProducer, kafka))


def test_the_workers_producer_delivers_to_it(kafka: KafkaServer) -> None:
    metadata = asyncio.run(_send_then_track_another(TopicTrackingProducer, kafka))
    assert metadata.offset == 0


async def _send_then_track_another(
    producer_class: type[aiokafka.AIOKafkaProducer], kafka: KafkaServer
) -> aiokafka.structs.RecordMetadata:
    tag = uuid.uuid4().hex[:8]
    first, other = f"learnt-{tag}", f"tracked-{tag}"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    admin.create_topics([NewTopic(first, 1, 1), NewTopic(other, 1, 1)])
    admin.close()
    producer = producer_class(
        bootstrap_servers=kafka.bootstrap_servers,
        linger_ms=1_000,  # the batch waits while the producer starts to track `other`
        request_timeout_ms=BATCH_EXPIRES_MS,
    )
    await producer.start()
    try:
        await producer.client.force_metadata_update()  # no topic tracked: all of them
        assert producer.client.cluster.partitions_for_topic(first) == {0}
        delivery = await producer.send(first, b"a transition", partition=0)
        await producer.client.add_topic(other)  # a refresh of the tracked topics
        return await asyncio.wait_for(delivery, 30)
    finally:
        await producer.stop()
