"""The rules a deployment last started with, kept in a compacted topic of its own.

Each worker, once started, records its rules (the whole file, as JSON) under one key
in `<app id>-rules`; a worker started with other rules says what changed since, and
a re-score compares its rules with those the running workers use.
"""

from __future__ import annotations

import json
import time

from scoring import Rules, parse_rules
from scoring.errors import RulesError
from streams.kafka.topics import rules_topic
from streams.settings import Settings

KEY = b"rules"
READ_TIMEOUT_S = 10.0


def last_recorded(settings: Settings) -> Rules | None:
    """The rules the deployment's workers last started with (None: none recorded, or a
    record these rules can no longer read)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = TopicPartition(rules_topic(settings), 0)
    consumer = KafkaConsumer(**settings.kafka_python_config(), enable_auto_commit=False)
    try:
        if not consumer.partitions_for_topic(topic.topic):  # a deployment begun before it
            return None
        consumer.assign([topic])
        end = consumer.end_offsets([topic])[topic]
        consumer.seek_to_beginning(topic)
        last = None
        deadline = time.monotonic() + READ_TIMEOUT_S
        while consumer.position(topic) < end and time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500).get(topic, []):
                if record.key == KEY and record.value:
                    last = record.value
    finally:
        consumer.close()
    if last is None:
        return None
    try:
        return parse_rules(last.decode(), f"{topic.topic} (the rules recorded last)")
    except RulesError:
        return None  # written by another leadscore version, whose rules this one cannot read


def record(settings: Settings, rules: Rules) -> None:
    """Record `rules` as the ones the deployment runs now."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka_python_config(), acks="all")
    try:
        value = json.dumps(rules.spec.model_dump(mode="json")).encode()
        producer.send(rules_topic(settings), key=KEY, value=value, partition=0)
        producer.flush(timeout=READ_TIMEOUT_S)
    finally:
        producer.close(timeout=READ_TIMEOUT_S)
