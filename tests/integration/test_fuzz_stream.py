"""Fuzzed input on the real Kafka: a worker fed bad records among good ones
dead-letters every bad one with its origin, gives for the good ones exactly what
`leadscore replay --transitions` gives, and its memory stays bounded.

The records go to the input topic as raw bytes, straight from kafka-python.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from scoring import Transition
from scoring.outputs import DeadLetter
from streams.dev.traffic import generate
from tests.integration.harness import LEADSCORE, REPO, Deployment, WorkerProcess, lead_of
from tests.integration.kafka_server import KafkaServer

# Just under a megabyte: Kafka takes records up to 1,048,588 bytes (message.max.bytes),
# and a dead letter carries its record base64-encoded (4/3 of it), which the dead-letter
# topic and the worker's producer allow (streams.kafka.topics.MAX_RECORD_BYTES).
BIG = 1_000_000
DEEP = 10_000
RSS_GROWTH_LIMIT = 300 * 1024 * 1024
KEYLESS = {"empty", "not an object: null"}  # a record needs a key or a value


def good_traffic(messages: int, leads: int) -> list[bytes]:
    start = datetime.fromtimestamp(time.time() - 120, UTC)
    lines = [
        json.dumps(message).encode()
        for message in generate(messages, leads, seed=41, start=start, span_days=60 / 86_400)
    ]
    # Edge cases that are good: a byte order mark (RFC 8259 lets a parser ignore it)
    # and a duplicate name, which means its last value, in the stream as in replay.
    lines[10] = b"\xef\xbb\xbf" + lines[10]
    kind = json.dumps(json.loads(lines[20])["type"]).encode()
    lines[20] = lines[20][:-1] + b', "type": ' + kind + b"}"
    return lines


def bad_corpus(template: dict[str, object]) -> dict[str, bytes | None]:
    """What a broken producer sends, by name; each is rejected by the parser."""

    def message(**fields: object) -> bytes:
        return json.dumps({**template, **fields}).encode()

    def without(field: str) -> bytes:
        return json.dumps({k: v for k, v in template.items() if k != field}).encode()

    good = message()
    nested = "[" * DEEP + "]" * DEEP
    return {
        "not UTF-8": b"\xff\xfe not even utf-8",
        "invalid UTF-8 in a string": good.replace(b'"userId": "', b'"userId": "\xc3\x28'),
        "an overlong UTF-8 slash": good.replace(b'"userId": "', b'"userId": "\xc0\xaf'),
        "a UTF-16 surrogate in UTF-8": good.replace(b'"userId": "', b'"userId": "\xed\xa0\x80'),
        "truncated JSON": good[: len(good) // 2],
        "truncated by one byte": good[:-1],
        "trailing garbage": good + b" }",
        "a huge string as userId": message(userId="x" * BIG),
        "a huge string as type": message(type="x" * BIG),
        "10,000 levels of [": b"[" * DEEP,
        "10,000 levels of {": b'{"a":' * DEEP,
        "10,000 levels in properties": good[:-1] + b', "properties": {"x": '
        + nested.encode() + b"}}",
        "timestamp a numeric string": message(timestamp="1793523600"),
        "timestamp in the year 9999": message(timestamp="9999-12-31T23:59:59Z"),
        "timestamp in the year 1": message(timestamp="0001-01-01T00:00:00Z"),
        "timestamp an impossible date": message(timestamp="2026-13-45T09:00:00Z"),
        "timestamp a number before 1970": message(timestamp=-1),
        "no event time at all": json.dumps({k: v for k, v in template.items() if k not in (
            "timestamp", "originalTimestamp", "sentAt", "receivedAt")}).encode(),
        "messageId a fraction": message(messageId=1.5),
        "userId a fraction": message(userId=1.5),
        "the last duplicate wrong": good[:-1] + b', "messageId": [7]}',
        "a batch body whose item has no type": b'{"batch": [{"userId": "x"}]}',
        "event true": message(event=True),
        "properties a list": message(properties=[]),
        "context a string": message(context="x"),
        "userId an object": message(userId={"id": 1}),
        "type a number": message(type=5),
        "unknown type": message(type="purchase"),
        "no type": without("type"),
        "no lead id": message(userId=None, anonymousId=None),
        "NaN": good[:-1] + b', "properties": {"revenue": NaN}}',
        "Infinity": good[:-1] + b', "properties": {"revenue": -Infinity}}',
        "1e400": good[:-1] + b', "properties": {"revenue": 1e400}}',
        "10**5000": good[:-1] + b', "properties": {"revenue": 1' + b"0" * 5000 + b"}}",
        "not an object: array": b"[1, 2, 3]",
        "not an object: string": b'"a string"',
        "not an object: number": b"42",
        "not an object: null": b"null",
        "empty": b"",
        "blank": b" \n",
        "a null value (tombstone)": None,
        "a byte order mark alone": b"\xef\xbb\xbf",
        "a wrong framework": message(event="Qualification Updated",
                                     properties={"framework": "MEDDIC", "criteria": {"x": True}}),
    }  # fmt: skip


def replay_transitions(lines: list[bytes], root: Path) -> list[Transition]:
    """What `leadscore replay --transitions` prints for the lines."""
    events = root / "good.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    run = subprocess.run(
        [*LEADSCORE, "replay", str(events), "--transitions", "--no-stitch"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert b"0 bad lines skipped" in run.stderr, run.stderr.decode()[-2000:]
    return [Transition.model_validate_json(line) for line in run.stdout.splitlines()]


def per_lead(transitions: list[Transition]) -> dict[str, list[Transition]]:
    """Per lead, in order; a transition read twice (at least once) counted once."""
    by_lead: dict[str, list[Transition]] = defaultdict(list)
    seen: dict[str, Transition] = {}
    for transition in transitions:
        if transition.transition_id in seen:
            assert seen[transition.transition_id] == transition
            continue
        seen[transition.transition_id] = transition
        by_lead[transition.lead_id].append(transition)
    return dict(by_lead)


def rss(worker: WorkerProcess) -> int:
    """The worker's resident memory, in bytes."""
    assert worker.process is not None
    status = Path(f"/proc/{worker.process.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) * 1024


def test_bad_records_are_dead_lettered_and_the_good_ones_scored_as_in_replay(
    kafka: KafkaServer, tmp_path: Path
) -> None:
    deployment = Deployment(kafka, tmp_path)
    good = good_traffic(1500, 50)
    # The bad records are variants of a good message of a known lead, with an id of
    # their own: one accepted by mistake would change that lead's transitions.
    template = next(m for m in map(json.loads, good) if m["type"] == "track" and "userId" in m)
    template["messageId"] = "fuzzed"
    bad = list(bad_corpus(template).items())
    want = per_lead(replay_transitions(good, tmp_path))
    total = sum(map(len, want.values()))
    assert total >= 20, "too few transitions to compare"
    every = len(good) // len(bad)

    with deployment.worker() as worker:
        worker.wait_ready()
        before = rss(worker)
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        sent = {}  # (partition, offset) -> (name, key, value)
        for i, line in enumerate(good):
            producer.send(deployment.input_topic, key=(lead_of(line) or "").encode(), value=line)
            if i % every == 0 and i // every < len(bad):
                name, value = bad[i // every]
                key = None if name in KEYLESS else f"bad-{i // every}".encode()
                meta = producer.send(deployment.input_topic, key=key, value=value).get(timeout=30)
                sent[meta.partition, meta.offset] = (name, key, value)
        producer.flush()
        producer.close()
        assert len(sent) == len(bad)
        letters = {}
        for _, value in deployment.consume(deployment.dlq_topic, until=len(bad), timeout=60):
            letter = DeadLetter.model_validate_json(value)
            letters[letter.source_partition, letter.source_offset] = letter
        deployment.transitions(until=total, timeout=60)
        time.sleep(2)  # anything more would show up by now
        got = per_lead(deployment.transitions(until=total + 1, timeout=5))
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        after = rss(worker)
        health = worker.health()
        assert health is not None and health[0] == 200, worker.log_tail()

    missing = [sent[origin][0] for origin in sent.keys() - letters.keys()]
    assert not missing, f"not dead-lettered: {missing}\n{worker.log_tail()}"
    assert letters.keys() == sent.keys(), "dead letters for records that were not bad"
    for origin, (name, key, value) in sent.items():
        letter = letters[origin]
        assert letter.source_topic == deployment.input_topic, name
        assert (letter.original_key, letter.original_value) == (key, value), name
        assert letter.reason.strip() and len(letter.reason.splitlines()) == 1, (name, letter)
        assert len(letter.reason) <= 1_000, (name, letter.reason[:200])
    assert got == want, "the stream and replay differ"
    assert after - before < RSS_GROWTH_LIMIT, f"RSS grew from {before >> 20} to {after >> 20} MiB"
