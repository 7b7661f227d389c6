"""The Kafka topics of leadscore: names, partitions, configs, creation, and partitioning."""

from __future__ import annotations

import struct
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache

from streams.kafka.errors import TopicsRefused, unreachable
from streams.settings import Settings

# Input and repartitioned events are kept a week; outputs follow the broker default.
WEEK_MS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


# The largest record the worker sends (a request of its producer, a dead-letter record):
# a dead letter of the largest input record Kafka takes by default (1 MB) is 1.4 MB.
MAX_RECORD_BYTES = 4 * 1024 * 1024


def repartition_topic(settings: Settings) -> str:
    """Where records keyed by something other than their lead travel to the lead's partition."""
    return f"{settings.app_id}-lead-events-by-lead"


def funnel_topic(settings: Settings) -> str:
    return f"{settings.app_id}-funnel"


def rules_topic(settings: Settings) -> str:
    """Where the workers record the rules they start with (`streams.processing.rules_history`)."""
    return f"{settings.app_id}-rules"


# The worker's tables and their partitions (None: LEADSCORE_PARTITIONS, co-partitioned
# with the input); each has a changelog topic, `<app id>-<table>-changelog`.
TABLES: dict[str, int | None] = {
    "leads": None,
    "recent-transitions": None,
    "mql-since": None,
    "funnel": 1,
    "identities": None,  # "anon:<id>" -> the lead that holds it, on the partition of <id>
}


def changelog_topic(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the worker reads or writes, the tables' changelogs included.

    Faust creates the changelogs too, but a worker that joins the group before they
    exist (two workers starting together) can be handed an assignment without them:
    Faust then ignores the missing topic until the next rebalance, and no worker owns
    that table's data meanwhile (the API answers 503). Created here, they exist before
    any worker joins.
    """
    n = settings.partitions
    retained = {"retention.ms": WEEK_MS}
    compacted = {"cleanup.policy": "compact"}
    return [
        *(
            TopicSpec(changelog_topic(settings, table), partitions or n, compacted)
            for table, partitions in TABLES.items()
        ),
        *(TopicSpec(name, n, retained) for name in settings.input_topics),
        TopicSpec(repartition_topic(settings), n, retained),
        TopicSpec(settings.transitions_topic, n),
        TopicSpec(settings.alerts_topic, n),
        # One record per lead is all a consumer of scores needs: compact.
        TopicSpec(settings.scores_topic, n, {"cleanup.policy": "compact"}),
        # A dead letter carries its record base64-encoded: up to 4/3 of Kafka's largest.
        TopicSpec(settings.dlq_topic, n, {**retained, "max.message.bytes": str(MAX_RECORD_BYTES)}),
        TopicSpec(settings.deletions_topic, n),
        TopicSpec(settings.merges_topic, n),
        # Every transition again, on one partition, for the funnel totals.
        TopicSpec(funnel_topic(settings), 1, retained),
        TopicSpec(rules_topic(settings), 1, compacted),
        *([TopicSpec(settings.webhook_dlq_topic, n)] if settings.webhook_url else []),
    ]


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> None:
    """Create missing topics; refuse input topics whose partition count differs.

    Raises BrokerUnreachable with a clear message when the broker cannot be reached,
    TopicsRefused when Kafka refuses the topics or they do not fit the settings.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(
            **settings.kafka_python_config(),
            client_id=f"{settings.app_id}-admin",
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as error:
        raise unreachable(settings, error) from None
    try:
        existing = {
            topic["name"]: len(topic["partitions"])
            for topic in admin.describe_topics()
            if not topic.get("error_code")
        }
        specs = topic_specs(settings)
        n_input = settings.partitions
        for spec in specs:
            have = existing.get(spec.name)
            if have is not None and have != spec.partitions and spec.partitions == n_input:
                raise TopicsRefused(
                    f"topic {spec.name} has {have} partitions, but leadscore is set to "
                    f"{spec.partitions} (LEADSCORE_PARTITIONS): input, repartition and state "
                    "must be co-partitioned"
                )
        missing = [
            NewTopic(
                spec.name, spec.partitions, settings.replication_factor, topic_configs=spec.config
            )
            for spec in specs
            if spec.name not in existing
        ]
        if missing:
            with suppress(TopicAlreadyExistsError):  # another worker was first
                admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
    except KafkaError as error:
        raise TopicsRefused(f"Kafka refused to set up the topics: {error}") from None
    finally:
        admin.close()


@lru_cache(maxsize=65_536)
def partition_for(lead_key: bytes, partitions: int) -> int:
    """The partition of a lead: Kafka's default partitioner (murmur2) on the lead id."""
    return (murmur2(lead_key) & 0x7FFFFFFF) % partitions


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java's `Utils.murmur2`), as aiokafka's `partitioner.murmur2`
    computes it, a word at a time: aiokafka's reads byte by byte and cost a few times
    more (each claim's target is a key the cache has not seen)."""
    length = len(data)
    h = 0x9747B28C ^ length
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail, end = length & 3, length & ~3
    if tail == 3:
        h ^= data[end + 2] << 16
    if tail >= 2:
        h ^= data[end + 1] << 8
    if tail:
        h = ((h ^ data[end]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)
