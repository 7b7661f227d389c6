"""Records read again after a crash are not applied again, however many there are.

The defect this pins (issue 11): a worker flushes lead state ahead of its
committed offsets (the snapshot timer flushes; a commit comes later), is
killed, and the next run reads again from the committed offsets. Dedupe by
messageId saw only a lead's last 64 ids, so a lead with more messages than
that had the older ones applied twice. Here nothing is committed at all
before the kill (a commit interval of an hour), so every record is read
again, for a lead whose messages come straight to its partition and for one
whose messages take the repartition topic.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, TopicPartition

from scoring import Transition, load_rules, snapshot
from scoring.replay import Replay
from scoring.state import DEDUPE_WINDOW
from streams.kafka.topics import partition_for
from tests.integration.harness import Deployment
from tests.integration.kafka_server import KafkaServer

# A year ahead: no decay crossing comes due on the wall clock during the test.
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
CYCLE = ["Account Created", "Trial Started", "Unsubscribed", "Email Bounced"]  # +50, -50


def journey(lead: str, messages: int, first: int = 0) -> list[str]:
    """A decision maker who starts trials and unsubscribes, in turns: a
    transition every few messages, and engagement that any message applied twice moves."""
    traits = {"title": "VP Sales", "company": {"employees": 400}}
    lines = []
    if first == 0:
        lines.append(json.dumps({"type": "identify", "messageId": f"{lead}-id", "userId": lead,
                                 "timestamp": START.isoformat(), "traits": traits}))  # fmt: skip
    for n in range(first, first + messages):
        at = START + timedelta(hours=n + 1)
        lines.append(json.dumps({"type": "track", "event": CYCLE[n % len(CYCLE)],
                                 "messageId": f"{lead}-{n}", "userId": lead,
                                 "timestamp": at.isoformat()}))  # fmt: skip
    return lines


def expected(lines: list[str]) -> tuple[list[Transition], dict[bytes, object]]:
    rules = load_rules()
    replay = Replay(rules, stitch=False)  # as the stream scores, until it stitches
    transitions = [t for t in replay.feed(lines) if isinstance(t, Transition)]
    snapshots = {
        lead.encode(): json.loads(snapshot(state, rules).model_dump_json())
        for lead, state in replay.states.items()
    }
    return transitions, snapshots


def latest_snapshots(deployment: Deployment) -> dict[bytes, object]:
    records = deployment.consume(deployment.scores_topic, until=10**9, timeout=3)
    return {key: json.loads(value) for key, value in records if key is not None}


def wait_for_snapshots(deployment: Deployment, want: dict[bytes, object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    got: dict[bytes, object] = {}
    while time.monotonic() < deadline:
        got = latest_snapshots(deployment)
        if all(got.get(lead) == snap for lead, snap in want.items()):
            return

    def brief(snap: object) -> object:
        return snap and {k: snap[k] for k in ("stage", "engagement_score")}  # type: ignore[index]

    diff = {
        lead: (brief(got.get(lead)), brief(want[lead]))
        for lead in want
        if got.get(lead) != want[lead]
    }
    raise AssertionError(f"lead-scores, (stream, replay): {diff}")


def committed_input_offsets(deployment: Deployment) -> dict[int, int]:
    tps = [TopicPartition(deployment.input_topic, p) for p in range(deployment.partitions)]
    admin = KafkaAdminClient(bootstrap_servers=deployment.kafka.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets({deployment.app_id: tps}).get(deployment.app_id, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta and meta.offset > 0}


@pytest.mark.parametrize("data_dir", ["kept", "wiped"])
def test_records_read_again_after_a_kill_are_not_applied_again(
    kafka: KafkaServer, tmp_path: Path, data_dir: str
) -> None:
    deployment = Deployment(kafka, tmp_path)
    many = 2 * DEDUPE_WINDOW + 20
    # bob's records are keyed by another partition's key: each takes the repartition topic.
    bob_owner = partition_for(b"bob", deployment.partitions)
    stray = next(
        k for k in (f"k{n}" for n in range(100)) if partition_for(k.encode(), 4) != bob_owner
    )
    before = journey("ada", many) + journey("bob", many)
    after = journey("ada", 6, first=many) + journey("bob", 6, first=many)
    want_before = expected(before)
    want, want_snapshots = expected(before + after)
    # Flush often, commit never: the state runs ahead of the committed offsets.
    settings = {"LEADSCORE_COMMIT_INTERVAL": "3600", "LEADSCORE_SCORES_INTERVAL": "0.5"}

    worker = deployment.worker("w1", **settings).start()
    try:
        worker.wait_ready()
        deployment.produce(before, keys={"bob": stray})
        wait_for_snapshots(deployment, want_before[1], timeout=90)
        assert committed_input_offsets(deployment) == {}, "offsets were committed: no re-read"
        worker.kill()
        if data_dir == "wiped":  # the state then comes from the changelog
            shutil.rmtree(tmp_path / "w1" / "data")
        worker = deployment.worker("w1", **settings).start()
        worker.wait_ready(timeout=90)
        deployment.produce(after, keys={"bob": stray})
        wait_for_snapshots(deployment, want_snapshots, timeout=90)
        got = deployment.transitions(until=len(want), timeout=30)
    finally:
        worker.kill()

    # Each transition once (none re-sent: the re-read records changed nothing), as replay.
    assert sorted(t.transition_id for t in got) == sorted(t.transition_id for t in want)
    assert {t.transition_id: t for t in got} == {t.transition_id: t for t in want}
    assert len(want) > 40
