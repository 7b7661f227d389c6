"""The broker goes away under a working worker, and comes back with its data.

These tests stop and start a broker, so they have one of their own (on free
ports, started once for this module), not the session's that other tests
share. The traffic is recent and the example rules' engagement halves every
30 days, so no decay demotion falls within a test: every transition comes
from a message, and `leadscore replay --transitions` of every message sent
says what the stream must have emitted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from scoring import Transition
from streams.dev.traffic import generate
from tests.integration.harness import LEADSCORE, REPO, Deployment, WorkerProcess, lead_of
from tests.integration.kafka_server import KafkaServer

OUTAGE_S = 30.0
# The worker's producer gives up on a record after this (LEADSCORE_PRODUCER_REQUEST_TIMEOUT).
PRODUCER_TIMEOUT_S = 10.0
FEED_RATE = 200  # messages per second while feeding


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaServer]:
    """A broker of this module's own, to stop and start."""
    with KafkaServer() as server:
        yield server


@pytest.fixture
def deployment(broker: KafkaServer, tmp_path: Path) -> Iterator[Deployment]:
    if not broker.running:  # a failed test may have left it halted
        broker.resume()
    yield Deployment(broker, tmp_path)


def recent_traffic(messages: int, leads: int, seed: int, span_s: float = 120.0) -> list[str]:
    start = datetime.fromtimestamp(time.time() - span_s, UTC)
    return [
        json.dumps(message)
        for message in generate(messages, leads, seed=seed, start=start, span_days=span_s / 86_400)
    ]


def feed(deployment: Deployment, lines: list[str], rate: float = FEED_RATE) -> None:
    """Produce `lines` in order at about `rate` a second, each acknowledged by the broker."""
    producer = KafkaProducer(
        bootstrap_servers=deployment.kafka.bootstrap_servers,
        acks="all",
        max_in_flight_requests_per_connection=1,  # retries keep a lead's messages in order
    )
    try:
        started = time.monotonic()
        futures = []
        for number, line in enumerate(lines):
            key = lead_of(line.encode())
            futures.append(
                producer.send(
                    deployment.input_topic,
                    key=key.encode() if key else None,
                    value=line.encode(),
                )
            )
            time.sleep(max(0.0, started + number / rate - time.monotonic()))
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)


def replayed(lines: list[str], tmp_path: Path) -> list[Transition]:
    """What `leadscore replay --transitions` says of these messages."""
    events = tmp_path / "sent.jsonl"
    events.write_text("".join(line + "\n" for line in lines))
    done = subprocess.run(
        [*LEADSCORE, "replay", str(events), "--transitions", "--no-stitch"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [Transition.model_validate_json(line) for line in done.stdout.splitlines()]


def assert_replay_equals_stream(got: list[Transition], want: list[Transition]) -> None:
    """At-least-once: a transition may come twice, always with the same id and content;
    per lead, the distinct ones are replay's, in replay's order. A readable diff if not."""
    distinct: dict[str, Transition] = {}
    for transition in got:
        first = distinct.setdefault(transition.transition_id, transition)
        assert first == transition, f"{transition.transition_id} emitted twice, differently"
    stream, replay = per_lead(distinct.values()), per_lead(want)
    if stream == replay:
        return

    def brief(ts: list[Transition]) -> list[str]:
        return [f"{t.from_stage}>{t.to_stage} {t.trigger} {t.occurred_at:%H:%M:%S.%f}" for t in ts]

    diff = [
        f"{lead}: stream {brief(stream.get(lead, []))} replay {brief(replay.get(lead, []))}"
        for lead in sorted(set(stream) | set(replay))
        if stream.get(lead) != replay.get(lead)
    ]
    raise AssertionError("stream and replay differ:\n" + "\n".join(diff))


def per_lead(transitions: Iterable[Transition]) -> dict[str, list[Transition]]:
    leads: dict[str, list[Transition]] = {}
    for transition in transitions:
        leads.setdefault(transition.lead_id, []).append(transition)
    return leads


def exit_status(worker: WorkerProcess, timeout: float) -> int | None:
    assert worker.process is not None
    try:
        return worker.process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def restart_and_finish(
    deployment: Deployment, settings: dict[str, str], after: list[str], want: list[Transition]
) -> None:
    """Start w1 again on its data dir, feed `after`, and compare everything with replay."""
    with deployment.worker("w1", **settings) as worker:
        worker.wait_ready(timeout=120)
        feed(deployment, after)
        got = deployment.distinct_transitions(until=len(want), timeout=180)
        time.sleep(3)  # anything extra would show by now
        got = deployment.transitions(until=len(got) + 1, timeout=10)
        assert worker.stop(timeout=60) == 0, worker.log_tail()
    assert_replay_equals_stream(got, want)


def test_a_broker_stopped_mid_stream_for_30_s_is_waited_for(
    deployment: Deployment, tmp_path: Path
) -> None:
    broker = deployment.kafka
    lines = recent_traffic(3000, 100, seed=41)
    want = replayed(lines, tmp_path)
    assert len(want) > 30
    before, after = lines[:1500], lines[1500:]

    with deployment.worker("w1") as worker:
        worker.wait_ready(timeout=120)
        feed(deployment, before)  # the worker scores as it comes
        broker.halt(signal.SIGTERM)
        assert exit_status(worker, OUTAGE_S) is None, f"the worker stopped:\n{worker.log_tail()}"
        broker.resume()
        feed(deployment, after)
        got = deployment.distinct_transitions(until=len(want), timeout=180)
        time.sleep(3)  # anything extra would show by now
        got = deployment.transitions(until=len(got) + 1, timeout=10)
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        assert worker.stop(timeout=60) == 0, worker.log_tail()

    assert_replay_equals_stream(got, want)


def test_a_leader_gone_beyond_the_producer_timeout_stops_the_worker_and_a_restart_recovers(
    deployment: Deployment, tmp_path: Path
) -> None:
    broker = deployment.kafka
    lines = recent_traffic(2000, 80, seed=43)
    want = replayed(lines, tmp_path)
    assert len(want) > 20
    before, after = lines[:1000], lines[1000:]
    timeout = {"LEADSCORE_PRODUCER_REQUEST_TIMEOUT": f"{PRODUCER_TIMEOUT_S:g}"}

    with deployment.worker("w1", **timeout) as worker:
        worker.wait_ready(timeout=120)
        # Right after these, the worker sends their changelog records and score snapshots.
        feed(deployment, before)
        broker.halt(signal.SIGKILL)
        down_at = time.monotonic()
        status = exit_status(worker, PRODUCER_TIMEOUT_S + 120)
        stopped_after = time.monotonic() - down_at
        log = worker.log_tail(40)
    assert status is not None, f"the worker did not stop:\n{log}"
    assert status != 0, log
    # It waited for the broker, as long as it was set to; then it stopped, naming the setting.
    assert stopped_after > PRODUCER_TIMEOUT_S / 2, log
    assert "leadscore worker: stopped: Kafka at" in log
    assert "did not answer in time" in log
    assert "LEADSCORE_PRODUCER_REQUEST_TIMEOUT" in log

    broker.resume()
    restart_and_finish(deployment, timeout, after, want)


def test_a_stop_that_cannot_finish_ends_at_its_deadline_and_a_restart_recovers(
    deployment: Deployment, tmp_path: Path
) -> None:
    broker = deployment.kafka
    lines = recent_traffic(2000, 80, seed=47)
    want = replayed(lines, tmp_path)
    assert len(want) > 20
    before, after = lines[:1000], lines[1000:]
    deadline_s = 3.0
    settings = {"LEADSCORE_SHUTDOWN_TIMEOUT": f"{deadline_s:g}"}

    with deployment.worker("w1", **settings) as worker:
        worker.wait_ready(timeout=120)
        feed(deployment, before)
        broker.halt(signal.SIGKILL)  # its last commit and flush can only wait now
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        asked_at = time.monotonic()
        status = exit_status(worker, deadline_s + 30)
        stopped_after = time.monotonic() - asked_at
        log = worker.log_tail(400)
    assert status == 3, f"exit status {status}:\n{log}"
    assert deadline_s <= stopped_after < deadline_s + 15, log
    assert "the worker did not stop in 3 s (--shutdown-timeout (LEADSCORE_SHUTDOWN_TIMEOUT))" in log
    assert "(most recent call first)" in log  # the stacks, for the report

    broker.resume()
    restart_and_finish(deployment, settings, after, want)
