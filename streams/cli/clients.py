"""`leadscore send` and `leadscore tail`: kafka-python clients for people at a terminal."""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from scoring import Rejection
from scoring.messages import Batch, parse_input
from streams.console import render
from streams.kafka.errors import AccessRefused, unreachable
from streams.settings import Settings, where


@dataclass
class SendReport:
    sent: int = 0
    rejected: int = 0


def check_access(settings: Settings, timeout_s: float = 15.0) -> None:
    """Raise AccessRefused at once when the broker refuses the security settings.

    kafka-python retries a refused login or an untrusted certificate as it retries an
    unreachable broker, until its bootstrap times out, and then names neither. One
    aiokafka connection (as the worker's) tells them apart. A broker that does not
    answer is left to the clients: they wait for it, and say so.
    """
    if settings.security_protocol == "PLAINTEXT":
        return
    loop = asyncio.new_event_loop()  # not the thread's: the worker's Faust makes its own
    try:
        loop.run_until_complete(_check_access(settings, timeout_s))
    finally:
        loop.close()


async def _check_access(settings: Settings, timeout_s: float) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

    config = settings.aiokafka_config()
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            async with asyncio.timeout(timeout_s):
                connection = await create_conn(host, int(port), **config)
                await connection.close()
        except ssl.SSLCertVerificationError as error:
            raise AccessRefused(
                f"the certificate of Kafka at {server} is not trusted ({error.verify_message}): "
                f"check {where('ssl_cafile')}, the CA certificates that verify the broker"
            ) from None
        except SaslAuthenticationFailed:
            raise AccessRefused(
                f"Kafka at {server} refused the login of user {settings.sasl_username!r} "
                f"({settings.sasl_mechanism}): check {where('sasl_username')} and "
                f"{where('sasl_password')}"
            ) from None
        except UnsupportedSaslMechanismError:
            raise AccessRefused(
                f"Kafka at {server} does not accept SASL mechanism {settings.sasl_mechanism}: "
                f"check {where('sasl_mechanism')}"
            ) from None
        except (OSError, TimeoutError, KafkaError):
            continue  # not reached, or not like this: the clients find out and say so
        return


def send(
    settings: Settings,
    lines: Iterable[bytes],
    *,
    topic: str | None = None,
    errors: IO[str] = sys.stderr,
    progress: Callable[[SendReport], None] | None = None,
) -> SendReport:
    """Validate each line and produce the valid ones keyed by their lead id.

    A bad line is reported with its number and skipped; an unreachable broker
    raises BrokerUnreachable, refused security settings AccessRefused.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    target = topic or settings.input_topics[0]
    check_access(settings)
    try:
        producer = KafkaProducer(
            **settings.kafka_python_config(), acks="all", linger_ms=5, max_block_ms=10_000
        )
    except KafkaError as error:
        raise unreachable(settings, error) from None
    report = SendReport()
    pending: list[Any] = []
    try:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parsed = parse_input(line)
            if isinstance(parsed, Batch):
                # Each good item on its own, keyed by its lead; each bad one reported.
                for item in parsed:
                    if isinstance(item, Rejection):
                        report.rejected += 1
                        print(f"line {number}: {item.reason}", file=errors)
                        continue
                    value = item.model_dump_json(exclude_unset=True).encode()
                    pending.append(producer.send(target, key=item.lead_id.encode(), value=value))
                    report.sent += 1
                continue
            if isinstance(parsed, Rejection):
                report.rejected += 1
                print(f"line {number}: {parsed.reason}", file=errors)
                continue
            pending.append(
                producer.send(target, key=parsed.lead_id.encode(), value=line.rstrip(b"\r\n"))
            )
            report.sent += 1
            if progress and report.sent % 1000 == 0:
                progress(report)
            if len(pending) >= 10_000:
                _confirm(pending)
        producer.flush(timeout=30)
        _confirm(pending)
    except KafkaError as error:
        raise unreachable(settings, error) from None
    finally:
        producer.close(timeout=5)
    return report


def _confirm(pending: list[Any]) -> None:
    for future in pending:
        future.get(timeout=30)
    pending.clear()


def tail(
    settings: Settings,
    kind: str,
    *,
    from_beginning: bool,
    out: IO[str] = sys.stdout,
    max_records: int | None = None,
    idle_timeout: float | None = None,
) -> int:
    """Follow an output topic, one readable line per record; returns how many were shown."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    topic: str = getattr(settings, f"{kind}_topic")  # `kind` one of console.OUTPUTS
    check_access(settings)
    try:
        consumer = KafkaConsumer(
            topic,
            **settings.kafka_python_config(),
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
        )
    except KafkaError as error:
        raise unreachable(settings, error) from None
    shown = 0
    last_record = time.monotonic()
    try:
        while max_records is None or shown < max_records:
            batches = consumer.poll(timeout_ms=500)
            for record in (r for records in batches.values() for r in records):
                if max_records is not None and shown >= max_records:
                    break
                print(render(kind, record.value, record.key), file=out, flush=True)
                shown += 1
                last_record = time.monotonic()
            if idle_timeout is not None and time.monotonic() - last_record > idle_timeout:
                break
    finally:
        consumer.close()
    return shown
