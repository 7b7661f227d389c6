"""Smoke test of the test broker (tests/integration/kafka_server.py) with the real clients.

It checks that a real Kafka broker starts and that both Kafka clients the
project uses, kafka-python and aiokafka (which Faust runs on), can create
topics, produce, consume in a consumer group and use transactions with it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from tests.integration.kafka_server import KafkaServer

TIMEOUT_S = 30.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(kafka: KafkaServer, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def test_admin_creates_topic_with_three_partitions(kafka: KafkaServer) -> None:
    topic = unique("three")
    create_topic(kafka, topic, partitions=3)

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        assert topic in admin.list_topics()
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    assert described["error_code"] == 0
    assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]


def test_kafka_python_produce_and_consume_in_group(kafka: KafkaServer) -> None:
    topic, group = unique("kp"), unique("kp-group")
    create_topic(kafka, topic, partitions=3)
    sent = [f"message-{i}".encode() for i in range(10)]

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    try:
        for i, value in enumerate(sent):
            producer.send(topic, key=str(i).encode(), value=value)
        producer.flush(timeout=TIMEOUT_S)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: list[bytes] = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(received) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(r.value for r in records)
        consumer.commit()
        assert len(consumer.assignment()) == 3  # the group coordinator assigned every partition
    finally:
        consumer.close()
    assert sorted(received) == sorted(sent)

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    assert sum(meta.offset for meta in committed.values()) == len(sent)


def test_aiokafka_produce_and_consume_in_group(kafka: KafkaServer) -> None:
    topic, group = unique("aio"), unique("aio-group")
    create_topic(kafka, topic, partitions=3)
    sent = [f"async-{i}".encode() for i in range(10)]

    async def scenario() -> tuple[list[bytes], int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for i, value in enumerate(sent):
                await producer.send_and_wait(topic, key=str(i).encode(), value=value)
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        received: list[bytes] = []
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while len(received) < len(sent):
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        received.extend(r.value for r in records if r.value is not None)
            await consumer.commit()
            partitions = [TopicPartition(topic, p) for p in range(3)]
            committed = sum([await consumer.committed(tp) or 0 for tp in partitions])
        finally:
            await consumer.stop()
        return received, committed

    received, committed = asyncio.run(scenario())
    assert sorted(received) == sorted(sent)
    assert committed == len(sent)


def test_aiokafka_transactions_commit_and_abort(kafka: KafkaServer) -> None:
    topic = unique("txn")
    create_topic(kafka, topic, partitions=1)

    async def produce() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers, transactional_id=unique("txn-producer")
        )
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed-1")
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"aborted")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed-2")
        finally:
            await producer.stop()

    async def consume(isolation_level: str) -> list[bytes]:
        """Everything the topic yields at this isolation level, up to 'committed-2'."""
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka.bootstrap_servers,
            isolation_level=isolation_level,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        received: list[bytes] = []
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while b"committed-2" not in received:
                    batches = await consumer.getmany(timeout_ms=500)
                    for records in batches.values():
                        received.extend(r.value for r in records if r.value is not None)
        finally:
            await consumer.stop()
        return received

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        await produce()
        return await consume("read_committed"), await consume("read_uncommitted")

    committed, uncommitted = asyncio.run(scenario())
    assert committed == [b"committed-1", b"committed-2"]
    # The aborted record really was written: only read_committed hides it.
    assert uncommitted == [b"committed-1", b"aborted", b"committed-2"]
