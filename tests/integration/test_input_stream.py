"""Input as real pipelines deliver it, on the real Kafka: a batch body as one record, and
Segment's delete requests.

A batch record is its messages in order, each scored where it would be alone (on its
lead's partition); a bad item is dead-lettered with its index and the others are applied.
A delete forgets the lead: its state goes, a tombstone follows its snapshot on
lead-scores, lead-deletions says so, and a later message starts a new lead.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from scoring import Transition, load_rules
from scoring.outputs import DeadLetter, LeadDeletion
from scoring.replay import Replay
from streams.kafka.topics import partition_for
from tests.integration.harness import Deployment
from tests.integration.kafka_server import KafkaServer
from tests.integration.test_api import get

PARTITIONS = 4


def at(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 120 + seconds))


def two_leads_on_two_partitions() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    names = (f"ada-{tag}-{n}" for n in range(100))
    first = next(names)
    second = next(n for n in names if partition_for(n.encode(), PARTITIONS) != partition_for(
        first.encode(), PARTITIONS))  # fmt: skip
    return first, second


def scores_of(
    deployment: Deployment, lead: str, until: Callable[[list[bytes | None]], bool]
) -> list[bytes | None]:
    """The lead's records on lead-scores, once `until` holds of them (or after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        records = deployment.consume(deployment.scores_topic, until=10**6, timeout=2)
        scores: list[bytes | None] = [value for key, value in records if key == lead.encode()]
        if until(scores) or time.monotonic() > deadline:
            return scores


def test_a_batch_record_applies_its_good_items_and_dead_letters_the_bad_one(
    kafka: KafkaServer, tmp_path: Path
) -> None:
    deployment = Deployment(kafka, tmp_path, partitions=PARTITIONS)
    ada, bob = two_leads_on_two_partitions()
    vp = {"email": "ada@bigco.example", "title": "VP Sales", "company": {"employees": 400}}
    batch = json.dumps({
        "batch": [
            # No messageId (derived), no timestamp (originalTimestamp), a numeric-looking id.
            {"type": "identify", "userId": ada, "originalTimestamp": at(0), "traits": vp},
            {"type": "track", "userId": ada, "messageId": "b-2", "timestamp": at(1),
             "event": "Demo Requested"},
            {"userId": ada, "messageId": "b-3", "timestamp": at(2), "event": "No Type"},
            {"type": "identify", "userId": bob, "messageId": "b-4", "timestamp": at(3),
             "traits": {**vp, "email": "bob@bigco.example"}},
            {"type": "track", "userId": bob, "messageId": "b-5", "timestamp": at(4),
             "event": "Demo Requested"},
        ],
        "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
        "sentAt": at(5),
    }).encode()  # fmt: skip
    delete = json.dumps({"type": "delete", "userId": ada, "messageId": "del-1",
                         "timestamp": at(10), "context": []}).encode()  # fmt: skip
    again = json.dumps({"type": "page", "userId": ada, "messageId": "again-1",
                        "timestamp": at(11), "properties": {"path": "/blog"}}).encode()  # fmt: skip
    replay = Replay(load_rules(), stitch=False)
    outputs = list(replay.feed([batch, delete, again]))
    want = sorted(o.transition_id for o in outputs if isinstance(o, Transition))
    (deletion,) = [o for o in outputs if isinstance(o, LeadDeletion)]
    assert len(want) == 2 and replay.bad == 1  # each lead an MQL; item 2 rejected

    with deployment.worker(LEADSCORE_SCORES_INTERVAL="1") as worker:
        worker.wait_ready()
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        # Keyed by nobody in particular, as an HTTP intake would: one record, two leads.
        meta = producer.send(deployment.input_topic, key=b"batch", value=batch).get(timeout=30)
        producer.flush()
        got = deployment.transitions(until=2, timeout=60)
        assert sorted(t.transition_id for t in got) == want, worker.log_tail()
        ((_, letter_value),) = deployment.consume(deployment.dlq_topic, until=1, timeout=30)
        letter = DeadLetter.model_validate_json(letter_value)
        assert (letter.source_partition, letter.source_offset) == (meta.partition, meta.offset)
        assert letter.source_item == 2 and letter.reason.startswith("batch item 2: ")
        assert letter.original_value == batch

        status, lead = get(worker, f"/leads/{ada}")
        assert status == 200 and lead["stage"] == "mql", lead
        assert scores_of(deployment, ada, until=lambda s: bool(s))[0] is not None
        producer.send(deployment.input_topic, key=ada.encode(), value=delete).get(timeout=30)
        ((key, value),) = deployment.consume(deployment.deletions_topic, until=1, timeout=60)
        assert key == ada.encode() and LeadDeletion.model_validate_json(value) == deletion
        deadline = time.monotonic() + 30
        while (status := get(worker, f"/leads/{ada}")[0]) != 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 404, "the deleted lead is still there"
        # After the snapshot, a tombstone (once the deletion is flushed).
        scores = scores_of(deployment, ada, until=lambda s: bool(s) and s[-1] is None)
        assert scores[0] is not None and scores[-1] is None, scores

        # A later message starts a new lead, from nothing.
        producer.send(deployment.input_topic, key=ada.encode(), value=again).get(timeout=30)
        producer.close()
        deadline = time.monotonic() + 30
        while (answer := get(worker, f"/leads/{ada}"))[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, lead = answer
        assert status == 200 and lead["stage"] == "lead" and lead["fit_score"] == 0, lead
        assert get(worker, f"/leads/{bob}")[1]["stage"] == "mql"
    assert not replay.states[ada].fit and not replay.states[ada].traits  # replay agrees
