"""The webhook sink's pure parts: backoff, body, and delivery against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from scoring import Transition, load_rules
from scoring.outputs import sales_alert
from scoring.replay import Replay
from streams.sinks import webhooks
from streams.sinks.webhooks import Delivery, NotAnAlert, WebhookError, backoff, deliver, payload

EVENTS = [
    {"type": "identify", "messageId": "m1", "timestamp": "2026-11-01T09:00:00Z", "userId": "ada",
     "traits": {"title": "VP Engineering", "company": {"employees": 120}}},
    {"type": "track", "messageId": "m3", "timestamp": "2026-11-01T09:10:00Z", "userId": "ada",
     "event": "Demo Requested"},
    {"type": "track", "messageId": "m4", "timestamp": "2026-11-02T10:00:00Z", "userId": "ada",
     "event": "Qualification Updated", "properties": {"framework": "BANT",
     "criteria": {"budget": True, "authority": True, "need": True}}},
]  # fmt: skip


def an_alert() -> bytes:
    """A real sales alert, as the scoring agent publishes it."""
    replay = Replay(load_rules(None))
    transitions = [
        t for t in replay.feed(json.dumps(e) for e in EVENTS) if isinstance(t, Transition)
    ]
    assert [t.to_stage for t in transitions] == ["mql", "sql"]
    return sales_alert(transitions[-1]).model_dump_json().encode()


@dataclass
class Receiver:
    """A webhook that answers each POST with the next of `answers` (the last one repeats)."""

    answers: list[int]
    delay_s: float = 0.0
    retry_after: str | None = None
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        await asyncio.sleep(self.delay_s)
        status = self.answers[min(len(self.requests), len(self.answers)) - 1]
        headers = {"Location": "/hook"} if 300 <= status < 400 else {}
        if self.retry_after:
            headers["Retry-After"] = self.retry_after
        return web.Response(status=status, text="ok" if status < 300 else "no", headers=headers)


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@dataclass
class FakeSleep:
    """Records the delays asked for and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def run(
    scenario: Callable[[aiohttp.ClientSession], Awaitable[Delivery]],
) -> Delivery:
    async def main() -> Delivery:
        async with aiohttp.ClientSession() as session:
            return await scenario(session)

    return asyncio.run(main())


def post_to(
    receiver: Receiver, sleep: FakeSleep, *, attempts: int = 5, timeout: float = 5.0
) -> Delivery:
    async def scenario(session: aiohttp.ClientSession) -> Delivery:
        async with serving(receiver) as url:
            return await deliver(
                session,
                url,
                b'{"text": "hi"}',
                attempts=attempts,
                timeout=timeout,
                sleep=sleep,
                idempotency_key="t-1",
            )

    return run(scenario)


def test_backoff_doubles_from_half_a_second_up_to_a_cap() -> None:
    assert [backoff(attempt) for attempt in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff(10_000) == 30


def test_the_body_is_the_alert_plus_slacks_text_field() -> None:
    alert = an_alert()
    body = json.loads(payload(alert))
    original = json.loads(alert)
    assert body == {**original, "text": original["summary"]}
    assert body["text"].startswith("Lead ada is sales qualified")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object but list"),
        (b'{"summary": "s"}', "transition_id: a non-empty string is required"),
        (b'{"transition_id": "t", "summary": 3}', "summary: a non-empty string is required"),
    ],
)
def test_a_record_that_is_not_an_alert_is_refused(record: bytes, reason: str) -> None:
    with pytest.raises(NotAnAlert, match=reason):
        payload(record)


def test_two_server_errors_then_success_is_delivered_on_the_third_attempt() -> None:
    receiver, sleep = Receiver([500, 500, 200]), FakeSleep()
    outcome = post_to(receiver, sleep)
    assert outcome == Delivery(delivered=True, attempts=3, status=200)
    assert sleep.delays == [0.5, 1.0]
    assert [body for _, body in receiver.requests] == [b'{"text": "hi"}'] * 3
    headers = receiver.requests[0][0]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "t-1"


def test_a_server_that_keeps_failing_is_given_up_after_the_attempts() -> None:
    receiver, sleep = Receiver([503]), FakeSleep()
    outcome = post_to(receiver, sleep, attempts=4)
    assert not outcome.delivered
    assert (outcome.attempts, outcome.status, outcome.error) == (4, 503, None)
    assert outcome.reason == "gave up after 4 attempts, the last: HTTP 503"
    assert sleep.delays == [0.5, 1.0, 2.0]
    assert len(receiver.requests) == 4


@pytest.mark.parametrize("status", [400, 404, 302])
def test_a_client_error_or_redirect_is_not_retried(status: int) -> None:
    receiver, sleep = Receiver([status, 200]), FakeSleep()
    outcome = post_to(receiver, sleep)
    assert outcome == Delivery(
        delivered=False, attempts=1, status=status, reason=f"HTTP {status} is not retried"
    )
    assert sleep.delays == []
    assert len(receiver.requests) == 1


def test_too_many_requests_is_retried_after_the_servers_retry_after() -> None:
    receiver, sleep = Receiver([429, 200], retry_after="3"), FakeSleep()
    outcome = post_to(receiver, sleep)
    assert outcome == Delivery(delivered=True, attempts=2, status=200)
    assert sleep.delays == [3.0]


def test_a_server_too_slow_to_answer_is_a_timeout() -> None:
    receiver, sleep = Receiver([200], delay_s=2.0), FakeSleep()
    outcome = post_to(receiver, sleep, attempts=2, timeout=0.2)
    assert not outcome.delivered
    assert (outcome.attempts, outcome.status) == (2, None)
    assert outcome.error == "no answer within 0.2 s"
    assert outcome.reason == "gave up after 2 attempts, the last: no answer within 0.2 s"
    assert sleep.delays == [0.5]


def test_a_refused_connection_is_retried_and_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once it is closed
    url = f"http://127.0.0.1:{port}/services/T000/SECRET-TOKEN"
    sleep = FakeSleep()

    async def scenario(session: aiohttp.ClientSession) -> Delivery:
        return await deliver(session, url, b"{}", attempts=3, timeout=5.0, sleep=sleep)

    outcome = run(scenario)
    assert not outcome.delivered
    assert (outcome.attempts, outcome.status) == (3, None)
    assert outcome.error is not None
    assert outcome.error.startswith("ClientConnectorError: Cannot connect to host 127.0.0.1")
    assert "SECRET-TOKEN" not in f"{outcome.error} {outcome.reason}"  # the host at most
    assert sleep.delays == [0.5, 1.0]


def test_an_error_that_quotes_the_url_is_reported_without_it() -> None:
    url = "http://127.0.0.1:99999/services/T000/SECRET-TOKEN"  # no such port: aiohttp quotes it

    async def scenario(session: aiohttp.ClientSession) -> Delivery:
        return await deliver(session, url, b"{}", attempts=1, timeout=5.0, sleep=FakeSleep())

    outcome = run(scenario)
    assert outcome.error == "InvalidUrlClientError: <webhook url>"


@pytest.mark.parametrize(
    ("url", "attempts", "problem"),
    [
        ("hooks.slack.com/services/x", 5, "absolute http:// or https:// URL"),
        ("ftp://example.com/hook", 5, "absolute http:// or https:// URL"),
        ("https://example.com:99999/hook", 5, "absolute http:// or https:// URL"),
        ("https://example.com/hook", 0, "attempts must be at least 1"),
    ],
)
def test_the_sink_refuses_to_start_with_an_unusable_url_or_attempts(
    url: str, attempts: int, problem: str
) -> None:
    app: Any = None  # refused before the app is touched
    with pytest.raises(WebhookError, match=problem):
        webhooks.register(app, url, attempts=attempts, dlq_topic="webhook-dlq")
