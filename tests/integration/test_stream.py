"""The stream processor on Apache Kafka: the same transitions as replay, under failures too.

Each test runs `leadscore worker` processes against the session's broker, on
topics of its own. Event times are near the wall clock and engagement halves
every 10 seconds, so decay demotions (between messages and after the last
one) happen while the test watches.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from scoring import Transition, parse_rules
from scoring.outputs import DeadLetter
from scoring.replay import Replay
from streams.dev.traffic import generate
from tests.integration.harness import LEADSCORE, REPO, Deployment, lead_of
from tests.integration.kafka_server import KafkaServer

EXAMPLE_RULES = (REPO / "scoring" / "example_rules.yaml").read_text()
HALF_LIFE_S = 10.0
FAST_RULES = EXAMPLE_RULES.replace("half_life_days: 30", f"half_life_days: {HALF_LIFE_S / 86_400}")


@pytest.fixture
def deployment(kafka: KafkaServer, tmp_path: Path) -> Deployment:
    rules = tmp_path / "rules.yaml"
    rules.write_text(FAST_RULES)
    return Deployment(kafka, tmp_path, rules=rules)


def recent_traffic(messages: int, leads: int, seed: int, span_s: float = 60.0) -> list[str]:
    start = datetime.fromtimestamp(time.time() - span_s, UTC)
    return [
        json.dumps(message)
        for message in generate(messages, leads, seed=seed, start=start, span_days=span_s / 86_400)
    ]


def expected(
    lines: list[str], rules: str = FAST_RULES
) -> tuple[dict[str, list[Transition]], float]:
    """What replay says, per lead, with every decay demotion to come; and when the last is."""
    replay = Replay(parse_rules(rules), at=time.time() + 86_400, stitch=False)
    by_lead: dict[str, list[Transition]] = defaultdict(list)
    for item in replay.feed(lines):
        if isinstance(item, Transition):
            by_lead[item.lead_id].append(item)
    _, by_time = replay.finish()
    # Decay demotions (the SLAs' follow-ups, hours away, go to sales-alerts).
    demotions = [t for t in by_time if isinstance(t, Transition)]
    for demotion in demotions:
        by_lead[demotion.lead_id].append(demotion)
    last = max((t.occurred_at.timestamp() for t in demotions), default=time.time())
    return dict(by_lead), last


def per_lead(transitions: list[Transition]) -> dict[str, list[Transition]]:
    by_lead: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        by_lead[transition.lead_id].append(transition)
    return dict(by_lead)


def assert_same(
    got: dict[str, list[Transition]], want: dict[str, list[Transition]], logs: str = ""
) -> None:
    """Per lead, the same transitions in the same order; a readable diff if not."""
    if got == want:
        return

    def brief(ts: list[Transition]) -> list[str]:
        return [f"{t.from_stage}>{t.to_stage} {t.trigger} {t.occurred_at:%H:%M:%S.%f}" for t in ts]

    diff = [
        f"{lead}: stream {brief(got.get(lead, []))} replay {brief(want.get(lead, []))}"
        for lead in sorted(set(got) | set(want))
        if got.get(lead) != want.get(lead)
    ]
    raise AssertionError("stream and replay differ:\n" + "\n".join(diff) + f"\n{logs}")


def deduplicated(transitions: list[Transition]) -> list[Transition]:
    """At-least-once: a transition may come twice, always with the same id and content."""
    seen: dict[str, Transition] = {}
    for transition in transitions:
        assert seen.setdefault(transition.transition_id, transition) == transition
    return list(seen.values())


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def test_the_stream_emits_what_replay_says_decay_demotions_included(
    deployment: Deployment,
) -> None:
    lines = recent_traffic(1500, 40, seed=11, span_s=120)
    want, last_crossing = expected(lines)
    everything = [t for ts in want.values() for t in ts]
    total = len(everything)
    # A fair test: promotions, sql, disqualifications and decay demotions, some of
    # them between two messages of a lead and most after its last one.
    kinds = {(t.from_stage, t.to_stage, t.trigger) for t in everything}
    assert {("lead", "mql", "message"), ("mql", "sql", "message")} <= kinds
    assert {("lead", "disqualified", "message"), ("mql", "lead", "decay")} <= kinds
    assert total > 40
    # Three leads arrive keyed by a CRM id, not their lead id: they take the
    # repartition topic to their lead's partition, in order.
    leads = sorted({json.loads(line).get("userId", "") for line in lines} - {""})
    crm_keys = {lead: f"crm-{lead}" for lead in random.Random(3).sample(leads, 3)}

    with deployment.worker() as worker:
        worker.wait_ready()
        deployment.produce(lines, keys=crm_keys)
        wait_until(last_crossing + 3)
        got = deployment.transitions(until=total, timeout=60)

    assert_same(per_lead(deduplicated(got)), want)
    assert len(got) == total


def test_bad_input_goes_to_the_dead_letter_topic_and_duplicates_change_nothing(
    deployment: Deployment,
) -> None:
    good = recent_traffic(200, 10, seed=5)
    bad = [
        b"this is not json",
        b"[1, 2, 3]",
        json.dumps({"type": "purchase", "messageId": "x1", "userId": "lead-9",
                    "timestamp": "2026-11-01T09:00:00+00:00"}).encode(),
        json.dumps({"type": "track", "event": "Email Opened", "userId": "lead-9",
                    "messageId": "x2"}).encode(),
        b"\xff\xfe not even utf-8",
    ]  # fmt: skip
    want, last_crossing = expected(good)
    total = sum(map(len, want.values()))

    with deployment.worker() as worker:
        worker.wait_ready()
        producer = KafkaProducer(bootstrap_servers=deployment.kafka.bootstrap_servers)
        origins = []
        for i, line in enumerate(good):
            key = (lead_of(line.encode()) or "").encode()
            producer.send(deployment.input_topic, key=key, value=line.encode())
            if i % 40 == 0:
                sent = producer.send(deployment.input_topic, key=b"bad", value=bad[len(origins)])
                meta = sent.get(timeout=10)
                origins.append((meta.partition, meta.offset))
        producer.flush()
        # Every message again, as an at-least-once upstream would resend it.
        deployment.produce(good)
        letters = [
            DeadLetter.model_validate_json(value)
            for _, value in deployment.consume(deployment.dlq_topic, until=len(bad), timeout=60)
        ]
        wait_until(last_crossing + 3)
        got = deployment.transitions(until=total, timeout=60)
        time.sleep(2)  # anything extra would show up by now
        again = deployment.transitions(until=total + 1, timeout=2)

    assert [(d.source_partition, d.source_offset) for d in letters] == origins
    assert {d.source_topic for d in letters} == {deployment.input_topic}
    assert [d.original_value for d in letters] == bad
    assert {d.original_key for d in letters} == {b"bad"}
    reasons = [d.reason for d in letters]
    assert reasons[0].startswith("Invalid JSON")
    assert "unknown type 'purchase'" in reasons[2]
    assert reasons[3] == "timestamp is required (or one of originalTimestamp, receivedAt, sentAt)"
    assert_same(per_lead(got), want)
    assert len(again) == total


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_worker_killed_mid_stream_loses_no_state(deployment: Deployment, guarantee: str) -> None:
    deployment.guarantee = guarantee
    lines = recent_traffic(800, 30, seed=21, span_s=90)
    want, last_crossing = expected(lines)
    total = sum(map(len, want.values()))
    first, second = lines[:400], lines[400:]
    replay_first = Replay(parse_rules(FAST_RULES), stitch=False).feed(first)
    first_part = sum(isinstance(item, Transition) for item in replay_first)

    worker = deployment.worker().start()
    try:
        worker.wait_ready()
        deployment.produce(first)
        # Mid-stream: some transitions out, offsets committed or not.
        deployment.transitions(until=max(1, first_part // 2), timeout=60)
        worker.kill()
        deployment.produce(second)
        worker = deployment.worker().start()  # same data dir, state from RocksDB + changelog
        worker.wait_ready()
        wait_until(last_crossing + 3)
        got = deployment.distinct_transitions(
            until=total, timeout=60, read_committed=guarantee == "exactly_once"
        )
    finally:
        worker.kill()

    assert_same(per_lead(deduplicated(got)), want)
    if guarantee == "exactly_once":
        assert len(got) == total, "a read_committed consumer saw a transition twice"


def test_two_workers_share_the_partitions_and_one_takes_over(deployment: Deployment) -> None:
    lines = recent_traffic(800, 30, seed=31, span_s=90)
    want, last_crossing = expected(lines)
    total = sum(map(len, want.values()))
    replay_first = Replay(parse_rules(FAST_RULES), stitch=False).feed(lines[:400])
    first_part = sum(isinstance(item, Transition) for item in replay_first)

    with deployment.worker("w1") as one, deployment.worker("w2") as two:
        one.wait_ready()
        two.wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shares = [one.health(), two.health()]
            parts = [set(s[1]["partitions"]) if s else set() for s in shares]  # type: ignore[arg-type]
            if parts[0] and parts[1] and parts[0] | parts[1] == set(range(4)):
                break
            time.sleep(0.5)
        assert parts[0] and parts[1] and not parts[0] & parts[1], parts

        deployment.produce(lines[:400])
        deployment.transitions(until=first_part, timeout=60)
        # Once the first half's offsets are committed: a takeover of partitions never
        # committed is a known gap (README, "Records are never skipped").
        deployment.wait_committed(400, timeout=30)
        one.kill()
        deployment.produce(lines[400:])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = two.health()
            if answer and answer[0] == 200 and set(answer[1]["partitions"]) == set(range(4)):  # type: ignore[arg-type]
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"w2 did not take over in 60 s: {answer}\n{two.log_tail()}")
        wait_until(last_crossing + 3)
        got = deployment.distinct_transitions(until=total, timeout=60)
        logs = f"w1 warned:\n{one.warnings()}\nw2 warned:\n{two.warnings()}"
        streamed = per_lead(deduplicated(got))
        for lead in sorted(set(streamed) | set(want)):
            if streamed.get(lead) == want.get(lead):
                continue
            logs += f"\nw2 GET /leads/{lead}: {two.get(f'/leads/{lead}')}"

    assert_same(per_lead(deduplicated(got)), want, logs)


def test_the_worker_refuses_a_broken_rules_file(deployment: Deployment, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nengagement: {rules: [{id: x, points: ten}]}\n")
    env = {**deployment.env("w"), "LEADSCORE_RULES": str(broken)}
    started = time.monotonic()
    run = subprocess.run(
        [*LEADSCORE, "worker"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert time.monotonic() - started < 30
    assert f"invalid rules in {broken}" in run.stderr
    assert "engagement.rules[0].points: Input should be a valid number" in run.stderr
    assert "stages: Field required" in run.stderr
    admin = KafkaAdminClient(bootstrap_servers=deployment.kafka.bootstrap_servers)
    try:
        assert deployment.input_topic not in admin.list_topics()  # refused before Kafka
    finally:
        admin.close()


def test_the_worker_stops_at_once_when_kafka_is_unreachable(deployment: Deployment) -> None:
    env = {**deployment.env("w"), "LEADSCORE_BROKER": "kafka://127.0.0.1:1"}
    run = subprocess.run(
        [*LEADSCORE, "worker"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in run.stderr
