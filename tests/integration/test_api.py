"""The web API of a running worker on the real Kafka: codes, shapes, routing, the token."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streams.kafka.topics import partition_for
from tests.integration.harness import REPO, Deployment, WorkerProcess
from tests.integration.kafka_server import KafkaServer

TOKEN = "s3cret-token"
SCHEMAS = REPO / "schemas"


def schema(name: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / name).read_text()))


def get(worker: WorkerProcess, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
            kind = answer.headers.get_content_type()
            return answer.status, json.loads(body) if kind == "application/json" else body
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def buyer(lead: str, *, qualified: bool = False) -> list[str]:
    """A VP at a 400-person company who requests a demo (an MQL), and maybe passes BANT."""
    now = time.time()

    def at(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 30 + seconds))

    messages = [
        {"type": "identify", "messageId": f"{lead}-1", "userId": lead, "timestamp": at(0),
         "traits": {"email": f"{lead}@bigco.example", "title": "VP Sales",
                    "company": {"employees": 400}}},
        {"type": "track", "messageId": f"{lead}-2", "userId": lead, "timestamp": at(1),
         "event": "Demo Requested"},
    ]  # fmt: skip
    if qualified:
        messages.append(
            {"type": "track", "messageId": f"{lead}-3", "userId": lead, "timestamp": at(2),
             "event": "Qualification Updated", "properties": {"framework": "BANT",
             "criteria": {"budget": True, "authority": True, "need": True}}}
        )  # fmt: skip
    return [json.dumps(message) for message in messages]


def eventually(probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


@pytest.fixture
def deployment(kafka: KafkaServer, tmp_path: Path) -> Deployment:
    return Deployment(kafka, tmp_path)


def test_the_api_answers_with_documented_shapes_and_guards_with_the_token(
    deployment: Deployment,
) -> None:
    with deployment.worker(LEADSCORE_API_TOKEN=TOKEN) as worker:
        worker.wait_ready()
        deployment.produce([*buyer("ann"), *buyer("bob", qualified=True)])
        deployment.transitions(until=3, timeout=60)

        # Open without a token: health and metrics.
        assert get(worker, "/health", token=None)[0] == 200
        status, metrics = get(worker, "/metrics", token=None)
        assert status == 200
        assert b'leadscore_transitions_total{from_stage="lead",to_stage="mql"} 2.0' in metrics
        assert b'leadscore_messages_total{outcome="applied"} 5.0' in metrics

        # Everything else needs it.
        for path in ("/leads/ann", "/funnel", "/transitions/recent", "/leads/top"):
            assert get(worker, path, token=None) == (401, {"error": "unauthorized"})
            assert get(worker, path, token="wrong")[0] == 401

        status, ann = get(worker, "/leads/ann")
        assert status == 200
        jsonschema.validate(ann, schema("api-lead.schema.json"))
        assert ann["stage"] == "mql"
        assert {r["rule_id"] for r in ann["explanation"]["engagement"]} == {"demo-requested"}
        assert [t["to_stage"] for t in ann["recent_transitions"]] == ["mql"]

        status, bob = get(worker, "/leads/bob")
        assert [t["to_stage"] for t in bob["recent_transitions"]] == ["sql", "mql"]

        status, missing = get(worker, "/leads/nobody")
        assert (status, missing) == (404, {"error": "lead not found", "lead_id": "nobody"})
        jsonschema.validate(missing, schema("api-error.schema.json"))

        expected_stages = {"lead": 0, "mql": 1, "sql": 1, "disqualified": 0}

        def funnel_counted() -> Any:
            # New leads are counted once a second; transitions as they come.
            answer = get(worker, "/funnel")[1]
            return answer if answer["stages"] == expected_stages else None

        funnel = eventually(funnel_counted)
        assert funnel is not None, get(worker, "/funnel")[1]
        jsonschema.validate(funnel, schema("api-funnel.schema.json"))
        assert funnel["mql_to_sql"]["reached_mql"] == 2
        assert funnel["mql_to_sql"]["converted"] == 1
        assert funnel["mql_to_sql"]["conversion_rate"] == 0.5
        # One second from mql to sql: the histogram's first bucket (a minute or less).
        assert 0 < funnel["mql_to_sql"]["median_hours_to_sql"] < 1.3 / 60

        status, recent = get(worker, "/transitions/recent?limit=2")
        jsonschema.validate(recent, schema("api-recent-transitions.schema.json"))
        newest = recent["transitions"][0]
        assert (newest["lead_id"], newest["to_stage"]) == ("bob", "sql")
        assert len(recent["transitions"]) == 2

        status, top = get(worker, "/leads/top?stage=mql")
        jsonschema.validate(top, schema("api-top-leads.schema.json"))
        assert [lead["lead_id"] for lead in top["leads"]] == ["ann"]
        assert get(worker, "/leads/top?stage=hot")[0] == 400


def test_requests_reach_the_worker_that_owns_the_lead(deployment: Deployment) -> None:
    leads = [f"lead-{i}" for i in range(12)]
    with deployment.worker("w1") as one, deployment.worker("w2") as two:
        one.wait_ready()
        two.wait_ready()

        def split() -> Any:
            shares = [set(w.wait_ready()["partitions"]) for w in (one, two)]  # type: ignore[arg-type]
            return shares if all(shares) and shares[0] | shares[1] == set(range(4)) else None

        shares = eventually(split, timeout=60)
        assert shares, "the two workers did not share the partitions"
        deployment.produce([line for lead in leads for line in buyer(lead)])
        deployment.transitions(until=len(leads), timeout=60)

        owners = {lead: 0 if partition_for(lead.encode(), 4) in shares[0] else 1 for lead in leads}
        assert set(owners.values()) == {0, 1}
        for lead, owner in owners.items():
            other = (one, two)[1 - owner]
            status, answer = get(other, f"/leads/{lead}", token=None)
            assert status == 200, (lead, answer)
            assert answer["lead_id"] == lead and answer["stage"] == "mql"

        status, top = get(one, "/leads/top?stage=mql&limit=100", token=None)
        assert sorted(lead["lead_id"] for lead in top["leads"]) == sorted(leads)
        assert get(two, "/funnel", token=None)[0] == 200


def test_the_consumer_lag_after_a_restart_counts_only_what_is_not_handled(
    deployment: Deployment,
) -> None:
    lines = [line for n in range(6) for line in buyer(f"lag-{n}")]
    with deployment.worker() as worker:
        worker.wait_ready()
        deployment.produce(lines)
        assert len(deployment.transitions(until=6, timeout=30)) == 6
        assert worker.stop() == 0  # a clean stop commits

    def lags(worker: WorkerProcess) -> list[float]:
        _, metrics = get(worker, "/metrics", token=None)
        return [
            float(line.rsplit(b" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith(b"leadscore_consumer_lag{")
        ]

    with deployment.worker() as worker:
        worker.wait_ready()
        # Every partition was handled to its end before the stop, and nothing came since.
        assert eventually(lambda: len(lags(worker)) == deployment.partitions)
        assert lags(worker) == [0.0] * deployment.partitions
        deployment.produce(buyer("lag-late"))
        assert len(deployment.transitions(until=7, timeout=30)) == 7
        assert eventually(lambda: lags(worker) == [0.0] * deployment.partitions)
