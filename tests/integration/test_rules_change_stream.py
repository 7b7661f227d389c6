"""A rules change on Apache Kafka: a worker restarted with new points for an engagement rule
re-weights a known lead's decayed total exactly, as a replay under the new points from the
start scores it."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path

import pytest

from scoring import parse_rules
from scoring.engine import snapshot
from scoring.replay import Replay
from tests.integration.harness import REPO, Deployment, WorkerProcess
from tests.integration.kafka_server import KafkaServer

EXAMPLE = (REPO / "scoring" / "example_rules.yaml").read_text()
DEMO = "event: Demo Requested\n      points: 40"
PRICING = 'properties.path: {starts_with: "/pricing"}\n      points: 15'
PROPOSED = (
    EXAMPLE.replace('version: "2026-12-example"', 'version: "2026-12-demo-x2"')
    .replace(DEMO, DEMO.replace("40", "80"))
    .replace(PRICING, PRICING.replace("15", "5"))
)


def history(now: float) -> list[str]:
    """ada: a demo request and a pricing page, some days ago."""

    def at(days: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - days * 86_400))

    return [
        json.dumps({"type": "identify", "messageId": "r0", "userId": "ada", "timestamp": at(9),
                    "traits": {"title": "VP Sales", "email": "ada@bigco.example"}}),
        json.dumps({"type": "track", "messageId": "r1", "userId": "ada", "timestamp": at(8),
                    "event": "Demo Requested"}),
        json.dumps({"type": "page", "messageId": "r2", "userId": "ada", "timestamp": at(6),
                    "properties": {"path": "/pricing/teams"}}),
        # After the change:
        json.dumps({"type": "track", "messageId": "r3", "userId": "ada", "timestamp": at(1),
                    "event": "Email Opened"}),
    ]  # fmt: skip


def engagement_of(worker: WorkerProcess, rule: str, timeout: float = 30.0) -> dict[str, object]:
    """GET /leads/ada once its explanation holds `rule`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = worker.get("/leads/ada")
        if answer and answer[0] == 200:
            rules = {r["rule_id"] for r in answer[1]["explanation"]["engagement"]}  # type: ignore[index]
            if rule in rules:
                return answer[1]
        time.sleep(0.3)
    raise AssertionError(f"ada has no {rule} points after {timeout} s: {answer}")


@pytest.fixture
def deployment(kafka: KafkaServer, tmp_path: Path) -> Deployment:
    """A deployment under the example rules, in a file the test then changes."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(EXAMPLE)
    return Deployment(kafka, tmp_path, rules=rules)


def test_a_restart_with_new_points_reweights_a_lead_exactly(deployment: Deployment) -> None:
    rules = deployment.rules
    assert rules is not None
    lines = history(time.time())

    with deployment.worker() as worker:
        worker.wait_ready()
        deployment.produce(lines[:3])
        before = engagement_of(worker, "pricing-page")
        worker.stop()
    old = {r["rule_id"]: r["points"] for r in before["explanation"]["engagement"]}  # type: ignore[index]

    rules.write_text(PROPOSED)
    with deployment.worker() as worker:
        worker.wait_ready()
        deployment.produce(lines[3:])
        after = engagement_of(worker, "email-open")
        worker.stop()

    replay = Replay(parse_rules(PROPOSED), stitch=False)
    for _ in replay.feed(lines):
        pass
    as_of = datetime.fromisoformat(str(after["as_of"])).timestamp()
    want = snapshot(replay.states["ada"], parse_rules(PROPOSED), as_of)
    got = {r["rule_id"]: r["points"] for r in after["explanation"]["engagement"]}  # type: ignore[index]
    assert got.keys() == {r.rule_id for r in want.explanation.engagement}
    for rule in want.explanation.engagement:
        assert math.isclose(got[rule.rule_id], rule.points, abs_tol=0.002), (rule, got)
    # Seconds apart, at a 30-day half-life: the same decay, the new points.
    assert math.isclose(got["demo-requested"] / old["demo-requested"], 2.0, rel_tol=1e-3)
    assert math.isclose(got["pricing-page"] / old["pricing-page"], 1 / 3, rel_tol=1e-3)
    assert after["rules_version"] == "2026-12-demo-x2"
    # The worker said what changed since the rules it last started with.
    log = worker.log_path.read_text()
    assert "the rules changed since the last start (2026-12-example, now 2026-12-demo-x2):" in log
    assert "engagement rule demo-requested changed: points: 40.0 -> 80.0" in log
    assert "engagement rule pricing-page changed: points: 15.0 -> 5.0" in log
    assert log.count("the rules changed since the last start") == 1  # not on the first start


def quiet_history(now: float) -> list[str]:
    """bob: a demo request 20 days ago made him an mql, and decay took him out again (under
    the example rules); under doubled demo points he is an mql still."""
    day = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 20 * 86_400))
    return [
        json.dumps({"type": "identify", "messageId": "b0", "userId": "bob", "timestamp": day,
                    "traits": {"title": "VP Sales", "email": "bob@bigco.example"}}),
        json.dumps({"type": "track", "messageId": "b1", "userId": "bob", "timestamp": day,
                    "event": "Demo Requested"}),
    ]  # fmt: skip


def test_the_rules_sweep_brings_a_lead_with_no_new_message_to_the_new_rules(
    deployment: Deployment,
) -> None:
    rules = deployment.rules
    assert rules is not None

    with deployment.worker() as worker:
        worker.wait_ready()
        deployment.produce(quiet_history(time.time()))
        first = deployment.transitions(until=2, timeout=30)
        worker.stop()
    assert [(t.from_stage, t.to_stage, t.trigger) for t in first] == [
        ("lead", "mql", "message"),
        ("mql", "lead", "decay"),
    ]

    rules.write_text(PROPOSED)
    with deployment.worker() as worker:
        worker.wait_ready()
        (*_, brought) = deployment.transitions(until=3, timeout=30)
        deadline = time.monotonic() + 10
        while (answer := worker.get("/leads/bob")) and time.monotonic() < deadline:
            if answer[1]["stage"] == "mql":
                break
            time.sleep(0.2)
        worker.stop()
    assert (brought.from_stage, brought.to_stage, brought.trigger) == ("lead", "mql", "rules")
    assert brought.message_id is None
    assert brought.reason.startswith("rules 2026-12-demo-x2: fit 30 >= 30 and engagement")
    # Re-weighted exactly: what a replay under the doubled points from the start holds.
    replay = Replay(parse_rules(PROPOSED), stitch=False)
    for _ in replay.feed(quiet_history(time.time())):
        pass
    as_of = brought.occurred_at.timestamp()
    want = snapshot(replay.states["bob"], parse_rules(PROPOSED), as_of).engagement_score
    assert math.isclose(brought.engagement_score, want, abs_tol=0.002)
    assert answer is not None and answer[1]["rules_version"] == "2026-12-demo-x2", answer
    assert "rules sweep: 1 leads sent to be brought to rules 2026-12-demo-x2" in (
        worker.log_path.read_text()
    )
