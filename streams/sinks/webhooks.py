"""The sales-alert webhook sink: each record of `sales-alerts` POSTed as JSON to one URL.

The body is the alert as published plus Slack's `text` (the summary), so a
Slack incoming webhook shows it as is. Connection errors, timeouts, 5xx and
429 answers are retried with exponential backoff; an alert that still fails,
or is refused with another 4xx, goes to the webhook dead-letter topic and the
sink goes on with the next alert. Alerts are posted one at a time, in
partition order (agent concurrency 1).

An alert is posted once: its transition id goes into the `webhook-delivered`
table when the POST succeeds, and a redelivered record (a restart, a
rebalance, the scorer's at-least-once resend) finds it there. The one
gap: a crash after a successful POST and before the table write reaches the
changelog posts that alert once more on restart, so the webhook gets it at
least once. Receivers that must not see it twice dedupe by `transition_id`,
which is also sent as the `Idempotency-Key` header.

Logs name an alert by its transition id only: the lead id and the summary are
personal data, and the URL may carry a secret token (Slack's does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from yarl import URL

from scoring.errors import LeadscoreError
from streams.context import LeadscoreApp

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
USER_AGENT = "leadscore-webhook"


class WebhookError(LeadscoreError):
    """The webhook sink cannot be set up as asked."""


class NotAnAlert(LeadscoreError):
    """A record of the alerts topic that is not a sales alert: it is dead-lettered, not posted."""


@dataclass(frozen=True)
class Delivery:
    """How posting one alert ended."""

    delivered: bool
    attempts: int
    status: int | None  # the last HTTP status; None when the last attempt got no answer
    error: str | None = None  # the last connection error or timeout
    reason: str | None = None  # why it failed; None when delivered


class WebhookDeadLetter(BaseModel):
    """An alert the webhook did not take: the value on the webhook dead-letter topic."""

    model_config = ConfigDict(frozen=True)

    reason: str
    transition_id: str | None = Field(description="null when the record was not an alert")
    attempts: int = Field(description="POSTs made; 0 when the record was not an alert")
    last_status: int | None = Field(description="HTTP status of the last attempt, if answered")
    last_error: str | None = Field(description="connection error or timeout of the last attempt")
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: datetime = Field(description="wall-clock time the sink gave up")
    alert: JsonValue = Field(description="the original alert JSON (its text if it was not JSON)")


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): 0.5, 1, 2, 4 ... up to 30."""
    return min(FIRST_BACKOFF_S * 2.0 ** min(attempt - 1, 16), MAX_BACKOFF_S)


def payload(alert_json: bytes) -> bytes:
    """The POST body: the alert as published, plus Slack's `text` field (the summary)."""
    return _body(_parse(alert_json))


def _parse(alert_json: bytes) -> dict[str, Any]:
    try:
        alert = orjson.loads(alert_json)
    except orjson.JSONDecodeError as error:
        raise NotAnAlert(f"not JSON: {error}") from None
    if not isinstance(alert, dict):
        raise NotAnAlert(f"not a JSON object but {type(alert).__name__}")
    # A change to sql is named by its transition, a follow-up (kind sla_*) by its own id.
    id_field = "alert_id" if str(alert.get("kind", "")).startswith("sla_") else "transition_id"
    for field in (id_field, "summary"):
        if not isinstance(alert.get(field), str) or not alert[field]:
            raise NotAnAlert(f"{field}: a non-empty string is required")
    return alert


def alert_id(alert: Mapping[str, Any]) -> str:
    """What names an alert (checked by `_parse`): its follow-up id, else its transition's."""
    named: str = alert.get("alert_id") or alert["transition_id"]
    return named


def _body(alert: Mapping[str, Any]) -> bytes:
    return orjson.dumps({**alert, "text": alert["summary"]})


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    attempts: int,
    timeout: float,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    idempotency_key: str | None = None,
) -> Delivery:
    """POST `body` until a 2xx, a status not worth retrying, or `attempts` tries."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    headers = {"Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    per_request = aiohttp.ClientTimeout(total=timeout)
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        status, error, retry_after = None, None, 0.0
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=per_request, allow_redirects=False
            ) as response:
                status = response.status
                # Drained so the connection is reused; a 2xx status line already counts.
                await response.read()
                retry_after = _retry_after(response.headers)
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except aiohttp.ClientError as failure:
            error = f"{type(failure).__name__}: {_redacted(str(failure), url)}"
        if status is not None and 200 <= status < 300:
            return Delivery(delivered=True, attempts=attempt, status=status)
        if status is not None and not _retryable(status):
            return Delivery(
                delivered=False,
                attempts=attempt,
                status=status,
                reason=f"HTTP {status} is not retried",
            )
        if attempt < attempts:
            # A 429's or 503's Retry-After is honoured up to the backoff cap.
            delay = max(backoff(attempt), min(retry_after, MAX_BACKOFF_S))
            log.debug(
                "webhook %s: attempt %d failed (%s), next in %g s",
                idempotency_key,
                attempt,
                error or f"HTTP {status}",
                delay,
            )
            await sleep(delay)
    last = error or f"HTTP {status}"
    return Delivery(
        delivered=False,
        attempts=attempts,
        status=status,
        error=error,
        reason=f"gave up after {attempts} attempts, the last: {last}",
    )


def _redacted(text: str, url: str) -> str:
    """`text` without the URL, whose path may be a secret token (Slack's is)."""
    return text.replace(url, "<webhook url>")


def _retryable(status: int) -> bool:
    """5xx and 429 may pass; any other 4xx (and a redirect, which is not followed) will not."""
    return status == 429 or status >= 500


def _retry_after(headers: Mapping[str, str]) -> float:
    """Retry-After in seconds; 0 when absent or an HTTP date (the backoff covers those)."""
    try:
        return max(0.0, float(headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0


def register(
    app: LeadscoreApp, url: str, *, attempts: int = 5, timeout: float = 10.0, dlq_topic: str
) -> None:
    """Post every sales alert to `url`: the dedupe table, the dead-letter topic and the agent."""
    _check(url, attempts, timeout)
    delivered = app.faust.Table(
        "webhook-delivered",
        partitions=app.settings.partitions,
        key_type=bytes,
        value_type=bytes,
    )  # transition id -> when it was delivered (ISO-8601)
    dead_letters = app.faust.topic(
        dlq_topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    @app.faust.agent(app.alerts, name="webhook", concurrency=1)
    async def post_alerts(stream: Any) -> None:
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            async for event in stream.events():
                await handle(session, event)

    async def handle(session: aiohttp.ClientSession, event: Any) -> None:
        record = event.message
        try:
            alert = _parse(event.value or b"")
        except NotAnAlert as rejection:
            log.warning(
                "webhook: record %s[%s]@%s is not an alert: %s",
                record.topic,
                record.partition,
                record.offset,
                rejection,
            )
            refused = Delivery(
                delivered=False, attempts=0, status=None, reason=f"not an alert: {rejection}"
            )
            await dead_letter(record, refused)
            return
        transition_id = alert_id(alert)
        if transition_id.encode() in delivered:
            log.info("webhook %s: already delivered, skipped", transition_id)
            return
        outcome = await deliver(
            session,
            url,
            _body(alert),
            attempts=attempts,
            timeout=timeout,
            idempotency_key=transition_id,
        )
        if outcome.delivered:
            delivered[transition_id.encode()] = _now().isoformat().encode()
            log.info("webhook %s: delivered (attempt %d)", transition_id, outcome.attempts)
            return
        log.warning("webhook %s: dead-lettered: %s", transition_id, outcome.reason)
        await dead_letter(record, outcome, transition_id)

    async def dead_letter(record: Any, outcome: Delivery, transition_id: str | None = None) -> None:
        letter = WebhookDeadLetter(
            reason=outcome.reason or "failed",
            transition_id=transition_id,
            attempts=outcome.attempts,
            last_status=outcome.status,
            last_error=outcome.error,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            failed_at=_now(),
            alert=_original(record.value),
        )
        await dead_letters.send(key=record.key, value=letter.model_dump_json().encode())


def _check(url: str, attempts: int, timeout: float) -> None:
    problems = []
    try:
        parsed = URL(url)
    except ValueError:  # a bad port or IPv6 address
        parsed = URL()
    if parsed.scheme not in ("http", "https") or not parsed.host:
        problems.append("the webhook URL must be an absolute http:// or https:// URL")
    if attempts < 1:
        problems.append(f"webhook attempts must be at least 1, not {attempts}")
    if timeout <= 0:
        problems.append(f"the webhook timeout must be positive, not {timeout:g}")
    if problems:
        raise WebhookError("; ".join(problems))


def _original(value: bytes | None) -> JsonValue:
    """The alert as JSON if it is JSON, else its text: what the dead letter carries."""
    raw = value or b""
    try:
        parsed: JsonValue = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")
    return parsed


def _now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)
