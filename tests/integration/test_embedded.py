"""The worker on the embedded broker (Tansu) of `leadscore dev`.

Tansu answers ListOffsets with the last record batch's base offset + 1, not
the partition's end, and the worker writes its changelogs and snapshots in
multi-record batches there too: the worker reads end offsets from a Fetch
instead (`streams.kafka.tansu`), and a fresh worker recovers every lead from the
batched changelogs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from scoring import Transition, load_rules, snapshot
from scoring.replay import Replay
from streams.dev.broker import EmbeddedBroker
from streams.dev.traffic import generate
from streams.kafka.tansu import _fetched_high_watermarks
from tests.integration.harness import Deployment, free_port


def embedded(tansu: EmbeddedBroker) -> dict[str, str]:
    """A worker's settings on Tansu: its URL scheme selects the worker's tuning for it, and
    Tansu joins a group in about half the session timeout: keep it short."""
    return {
        "LEADSCORE_BROKER": f"tansu://{tansu.bootstrap}",
        "LEADSCORE_SESSION_TIMEOUT": "4",
        "LEADSCORE_REBALANCE_TIMEOUT": "4",
        "LEADSCORE_COMMIT_INTERVAL": "0.5",
        "LEADSCORE_SCORES_INTERVAL": "1",
    }


@dataclass
class Broker:
    """What `Deployment` needs of a broker."""

    bootstrap_servers: str


@pytest.fixture
def tansu() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=free_port()) as broker:
        yield broker


def test_tansu_end_offsets_are_read_from_fetch(tansu: EmbeddedBroker) -> None:
    """The broker's quirk, and the correction: ten records in one batch end at offset 10."""

    async def main() -> tuple[int, int]:
        admin = KafkaAdminClient(bootstrap_servers=tansu.bootstrap)
        admin.create_topics([NewTopic("batched", 1, 1)])
        admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=tansu.bootstrap)
        await producer.start()
        await consumer.start()
        try:
            batch = producer.create_batch()
            for n in range(10):
                batch.append(key=None, value=b"%d" % n, timestamp=None)
            await (await producer.send_batch(batch, "batched", partition=0))
            tp = TopicPartition("batched", 0)
            listed = (await consumer.end_offsets([tp]))[tp]
            corrected = await _fetched_high_watermarks(consumer, {tp: listed})
            return listed, corrected[tp]
        finally:
            await producer.stop()
            await consumer.stop()

    listed, corrected = asyncio.run(main())
    assert listed == 1  # Tansu: the last batch's base offset + 1
    assert corrected == 10


def test_a_fresh_worker_recovers_every_lead_from_batched_changelogs(
    tansu: EmbeddedBroker, tmp_path: Path
) -> None:
    deployment = Deployment(Broker(tansu.bootstrap), tmp_path)  # type: ignore[arg-type]
    start = datetime.fromtimestamp(time.time() - 600, UTC)
    lines = [
        json.dumps(message)
        for message in generate(1_200, 40, seed=7, start=start, span_days=600 / 86_400)
    ]
    first, second = lines[:800], lines[800:]
    replay = Replay(load_rules(), stitch=False)  # as the stream scores, until it stitches
    want_first = [t for t in replay.feed(first) if isinstance(t, Transition)]
    want = want_first + [t for t in replay.feed(second) if isinstance(t, Transition)]
    assert len(want_first) > 10 and len(want) > len(want_first)

    with deployment.worker("w1", **embedded(tansu)) as worker:
        worker.wait_ready()
        deployment.produce(first)
        assert len(_transitions(deployment, len(want_first))) == len(want_first)
        assert worker.stop() == 0  # a clean stop: the last snapshots go out

    # A new worker with an empty data directory: all it has of w1's leads is the changelog.
    with deployment.worker("w2", **embedded(tansu)) as worker:
        worker.wait_ready()
        deployment.produce(second)
        got = _transitions(deployment, len(want))
        assert worker.stop() == 0

    assert sorted(got, key=_order) == sorted(want, key=_order)
    # `lead-scores`: the latest snapshot of every lead is replay's.
    snapshots = deployment.consume(deployment.scores_topic, until=10**9, timeout=8)
    latest = {key: json.loads(value) for key, value in snapshots}
    rules = load_rules()
    assert latest == {
        lead.encode(): json.loads(snapshot(state, rules).model_dump_json())
        for lead, state in replay.states.items()
    }


def _transitions(deployment: Deployment, count: int, timeout: float = 90) -> list[Transition]:
    """Distinct transitions, until `count` of them (at-least-once: some may come twice,
    with the same id and content) or `timeout`."""
    deadline = time.monotonic() + timeout
    unique: dict[str, Transition] = {}
    while len(unique) < count and time.monotonic() < deadline:
        for transition in deployment.transitions(until=count + len(unique), timeout=5):
            assert unique.setdefault(transition.transition_id, transition) == transition
    return list(unique.values())


def _order(transition: Transition) -> Any:
    return (transition.lead_id, transition.occurred_at, transition.transition_id)
