"""The sales-alert webhook on Apache Kafka: each alert POSTed once, after retries, or dead-lettered.

`leadscore worker` runs with LEADSCORE_WEBHOOK_URL pointing at an HTTP server
in a thread of this test, which answers as the test says and records every
POST.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from streams.sinks.webhooks import WebhookDeadLetter
from tests.integration.harness import Deployment, WorkerProcess
from tests.integration.kafka_server import KafkaServer

NOW = time.time()


@dataclass(frozen=True)
class Post:
    transition_id: str
    status: int  # what the webhook answered
    body: dict[str, Any]
    idempotency_key: str | None


class Webhook:
    """A webhook receiver: `answer(attempt)` is the status for a transition's nth POST."""

    def __init__(self, answer: Callable[[int], int]) -> None:
        self.answer = answer
        self.posts: list[Post] = []
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with webhook.lock:
                    attempt = 1 + len(webhook.for_id(body["transition_id"]))
                    status = webhook.answer(attempt)
                    webhook.posts.append(
                        Post(body["transition_id"], status, body, self.headers["Idempotency-Key"])
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test's output is for failures

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def for_id(self, transition_id: str) -> list[Post]:
        return [post for post in self.posts if post.transition_id == transition_id]

    def wait_for(self, ok: int, timeout: float = 60.0) -> None:
        """Until `ok` POSTs were answered 2xx."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if sum(post.status < 300 for post in self.posts) >= ok:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{ok} deliveries expected in {timeout} s, got: {self.posts}")

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def deployment(kafka: KafkaServer, tmp_path: Path) -> Deployment:
    return Deployment(kafka, tmp_path)


def webhook_dlq(deployment: Deployment) -> str:
    return f"{deployment.alerts_topic}-webhook-dlq"


def worker(deployment: Deployment, name: str, url: str, attempts: int = 5) -> WorkerProcess:
    env = {
        **deployment.env(name),
        "LEADSCORE_WEBHOOK_URL": url,
        "LEADSCORE_WEBHOOK_ATTEMPTS": str(attempts),
        "LEADSCORE_WEBHOOK_DLQ_TOPIC": webhook_dlq(deployment),
    }
    return WorkerProcess(name, env, deployment.root / name)


def qualified(lead: str) -> list[str]:
    """A VP at a 400-person company who requests a demo (mql), then meets BANT (sql)."""

    def at(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(NOW - 60 + seconds))

    return [
        json.dumps({"type": "identify", "messageId": f"{lead}-1", "userId": lead,
                    "timestamp": at(0), "traits": {"title": "VP Sales",
                                                   "company": {"employees": 400}}}),
        json.dumps({"type": "track", "messageId": f"{lead}-2", "userId": lead,
                    "timestamp": at(1), "event": "Demo Requested"}),
        json.dumps({"type": "track", "messageId": f"{lead}-3", "userId": lead,
                    "timestamp": at(2), "event": "Qualification Updated",
                    "properties": {"framework": "BANT", "criteria": {"budget": True,
                                   "authority": True, "need": True}}}),
    ]  # fmt: skip


def test_each_alert_is_posted_once_after_a_retry_even_when_redelivered(
    deployment: Deployment,
) -> None:
    with Webhook(lambda attempt: 500 if attempt == 1 else 200) as hook:
        with worker(deployment, "w1", hook.url) as first:
            first.wait_ready()
            deployment.produce(qualified("lead-a") + qualified("lead-b"))
            alerts = deployment.consume(deployment.alerts_topic, until=2)
            hook.wait_for(ok=2)
            first.stop()
        originals = {json.loads(value)["transition_id"]: json.loads(value) for _, value in alerts}
        assert len(originals) == 2, alerts
        for transition_id, alert in originals.items():
            posts = hook.for_id(transition_id)
            assert [post.status for post in posts] == [500, 200], posts
            assert all(post.body == {**alert, "text": alert["summary"]} for post in posts)
            assert {post.idempotency_key for post in posts} == {transition_id}

        # A worker with no local state (the table comes back from its changelog) is sent
        # each alert again, then a new one on the same partition: only the new ones go out.
        with worker(deployment, "w2", hook.url) as second:
            second.wait_ready()
            producer = KafkaProducer(bootstrap_servers=deployment.kafka.bootstrap_servers)
            for key, value in alerts:
                alert = json.loads(value)
                fresh = {**alert, "transition_id": f"{alert['transition_id']}-new"}
                producer.send(deployment.alerts_topic, key=key, value=value)
                producer.send(deployment.alerts_topic, key=key, value=json.dumps(fresh).encode())
            producer.flush()
            producer.close()
            hook.wait_for(ok=4)

    for transition_id in originals:
        assert [post.status for post in hook.for_id(transition_id)] == [500, 200]
    assert len(hook.posts) == 8, hook.posts


def test_an_alert_the_webhook_keeps_refusing_goes_to_the_dead_letter_topic(
    deployment: Deployment,
) -> None:
    with (
        Webhook(lambda attempt: 503) as hook,
        worker(deployment, "w1", hook.url, attempts=2) as only,
    ):
        only.wait_ready()
        deployment.produce(qualified("lead-c") + qualified("lead-d"))
        alerts = deployment.consume(deployment.alerts_topic, until=2)
        records = deployment.consume(webhook_dlq(deployment), until=2)

    letters = {
        letter.transition_id: (key, letter)
        for key, letter in ((k, WebhookDeadLetter.model_validate_json(v)) for k, v in records)
    }
    assert len(alerts) == len(letters) == 2, records
    for key, value in alerts:
        alert = json.loads(value)
        letter_key, letter = letters[alert["transition_id"]]
        assert letter_key == key
        assert letter.reason == "gave up after 2 attempts, the last: HTTP 503"
        assert (letter.attempts, letter.last_status, letter.last_error) == (2, 503, None)
        assert letter.alert == alert
        assert letter.source_topic == deployment.alerts_topic
        assert [post.status for post in hook.for_id(alert["transition_id"])] == [503, 503]
    admin = KafkaAdminClient(bootstrap_servers=deployment.kafka.bootstrap_servers)
    try:
        (described,) = admin.describe_topics([webhook_dlq(deployment)])
    finally:
        admin.close()
    assert len(described["partitions"]) == deployment.partitions  # created by the worker
