"""The sales follow-up on Apache Kafka: an SLA breach and escalation emitted when the wall
clock passes their instants, a rep acting in time, and the index rebuilt by a restart;
the same records, with the same ids, as replay's."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scoring import parse_rules
from scoring.outputs import SALES_ALERT_ADAPTER, FollowUp, SalesAlert
from scoring.replay import Replay
from tests.integration.harness import REPO, Deployment, WorkerProcess
from tests.integration.kafka_server import KafkaServer

SLA_S = 18.0  # the SLA, and 36 s more to the escalation
RULES = (
    (REPO / "scoring" / "example_rules.yaml")
    .read_text()
    .replace("sla_hours: 4", f"sla_hours: {SLA_S / 3600}")
    .replace("escalate_after_hours: 4", f"escalate_after_hours: {2 * SLA_S / 3600}")
)


def qualified(lead: str, now: float, *, acted: bool) -> list[str]:
    """A VP at a 400-person company: a demo request (mql), then BANT (sql) 2 s ago; with
    `acted`, a rep's call a second later."""

    def at(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 4 + seconds))

    def track(n: int, seconds: float, event: str, **properties: Any) -> str:
        return json.dumps({"type": "track", "messageId": f"{lead}-{n}", "userId": lead,
                           "timestamp": at(seconds), "event": event,
                           "properties": properties})  # fmt: skip

    bant = {"budget": True, "authority": True, "need": True}
    lines = [
        json.dumps({"type": "identify", "messageId": f"{lead}-0", "userId": lead,
                    "timestamp": at(0), "traits": {"title": "VP Sales",
                    "email": f"{lead}@bigco.example", "company": {"employees": 400}}}),
        track(1, 1, "Demo Requested"),
        track(2, 2, "Qualification Updated", framework="BANT", criteria=bant),
    ]  # fmt: skip
    if acted:
        lines.append(track(3, 3, "Sales Contacted", channel="phone"))
    return lines


def alerts(deployment: Deployment, until: int, timeout: float) -> list[SalesAlert | FollowUp]:
    records = deployment.consume(deployment.alerts_topic, until=until, timeout=timeout)
    return [SALES_ALERT_ADAPTER.validate_json(value) for _, value in records]


def by_id(follow_ups: Iterable[FollowUp]) -> list[FollowUp]:
    """In id order: records of leads on different partitions come in any order."""
    return sorted(follow_ups, key=lambda f: f.alert_id)


def test_a_breach_and_its_escalation_come_once_as_in_replay_and_an_act_in_time_is_met(
    kafka: KafkaServer, tmp_path: Path
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    deployment = Deployment(kafka, tmp_path, rules=rules_file)
    with deployment.worker("w1") as first:
        first.wait_ready()
        now = time.time()
        lines = qualified("waiting-lead", now, acted=False) + qualified(
            "called-lead", now, acted=True
        )
        replay = Replay(parse_rules(RULES), at=now + 3600, stitch=False)
        replayed = [item for item in replay.feed(lines) if isinstance(item, FollowUp)]
        replayed += [item for item in replay.finish()[1] if isinstance(item, FollowUp)]
        assert [(f.lead_id, f.kind) for f in replayed] == [
            ("called-lead", "sla_met"),
            ("waiting-lead", "sla_breach"),
            ("waiting-lead", "sla_escalation"),
        ]
        met, breach, escalation = replayed
        deployment.produce(lines)
        # Two changes to sql, the met SLA, then the breach within a minute of its instant.
        before = alerts(deployment, until=4, timeout=SLA_S + 60)
        assert time.time() < escalation.occurred_at.timestamp(), "too slow to test a restart"
        first.stop()
    assert [a.kind for a in before].count("sql") == 2, before
    assert by_id(a for a in before if isinstance(a, FollowUp)) == by_id([met, breach])
    assert time.time() >= breach.occurred_at.timestamp()

    # A new worker rebuilds the index from the table: the escalation still comes, once.
    with deployment.worker("w2") as second:
        second.wait_ready()
        wait = escalation.occurred_at.timestamp() - time.time() + 30
        everything = alerts(deployment, until=5, timeout=max(wait, 30))
        time.sleep(3)  # nothing more comes
        everything = alerts(deployment, until=6, timeout=3)
        funnel = follow_up_figures(second)
    follow_ups = [a for a in everything if isinstance(a, FollowUp)]
    assert by_id(follow_ups) == by_id(replayed)
    assert escalation.hours_overdue == 2 * SLA_S / 3600
    # /funnel: one SLA met, one breached (and escalated); the act came within seconds.
    assert {k: funnel[k] for k in ("met", "breached", "escalated", "acted_late")} == {
        "met": 1,
        "breached": 1,
        "escalated": 1,
        "acted_late": 0,
    }, funnel
    assert funnel["within_sla_share"] == 0.5
    assert funnel["median_hours_to_first_action"] < 0.02  # the first bucket: under a minute


def follow_up_figures(worker: WorkerProcess, timeout: float = 30.0) -> dict[str, Any]:
    """GET /funnel's sales follow-up, once it counts the three follow-ups."""
    deadline = time.monotonic() + timeout
    figures: dict[str, Any] = {}
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{worker.port}/funnel"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                figures = json.loads(answer.read())["sales_follow_up"]
        except OSError:
            pass
        if figures.get("met", 0) + figures.get("breached", 0) + figures.get("escalated", 0) >= 3:
            break
        time.sleep(1)
    return figures
