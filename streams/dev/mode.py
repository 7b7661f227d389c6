"""`leadscore dev`: everything on one machine with no set-up.

An embedded Kafka-compatible broker (Tansu), a worker with its web server,
and, with `--demo`, live synthetic traffic; the terminal shows each
transition as it happens. Ctrl-C stops it all.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from scoring import Rules
from streams.console import render
from streams.dev.broker import EmbeddedBroker
from streams.settings import Settings


def run(settings: Settings, rules: Rules, *, broker_port: int, demo: bool, rate: float) -> None:
    from streams.app import create_app
    from streams.kafka.topics import ensure_topics
    from streams.worker import run as run_worker

    data_dir = Path(tempfile.mkdtemp(prefix="leadscore-dev-"))
    broker = EmbeddedBroker(port=broker_port)
    stop = threading.Event()
    helpers: list[threading.Thread] = []
    try:
        broker.start()
        asked = settings.model_fields_set
        settings = settings.model_copy(
            update={
                "broker": f"tansu://{broker.bootstrap}",  # the worker's tuning for Tansu
                # The broker keeps nothing across runs: neither may the worker.
                "data_dir": data_dir,
                "processing_guarantee": "at_least_once",  # the embedded broker has no transactions
                # Group joins on the embedded broker take about half the session timeout.
                "session_timeout": min(settings.session_timeout, 4.0),
                "heartbeat_interval": min(settings.heartbeat_interval, 1.0),
                "rebalance_timeout": min(settings.rebalance_timeout, 4.0),
                # The terminal is for transitions; Faust's chatter only when asked for.
                "log_level": settings.log_level
                if "log_level" in settings.model_fields_set
                else "warning",
            }
        )
        if "log_level" not in asked:
            # kafka-python warns about its own event loop's timing on a busy machine:
            # noise in a terminal meant for transitions.
            logging.getLogger("kafka").setLevel(logging.ERROR)
        ensure_topics(settings)
        print(
            f"leadscore dev: broker {broker.bootstrap} (embedded, in memory), "
            f"web http://{settings.web_bind}:{settings.web_port}/health, "
            f"rules {rules.version}. Ctrl-C stops.",
            flush=True,
        )
        helpers.append(_background(_show_transitions, settings, stop))
        if demo:
            helpers.append(_background(_demo_traffic, settings, stop, rate))
        run_worker(create_app(settings, rules))
    finally:
        stop.set()
        for helper in helpers:
            helper.join(timeout=5)
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _background(target: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def _show_transitions(settings: Settings, stop: threading.Event) -> None:
    from kafka import KafkaConsumer

    with _quietly():
        consumer = KafkaConsumer(
            settings.transitions_topic,
            **settings.kafka_python_config(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=300).values():
                for record in records:
                    print(render("transitions", record.value), flush=True)
        consumer.close()


def _demo_traffic(settings: Settings, stop: threading.Event, rate: float) -> None:
    import orjson
    from kafka import KafkaProducer

    from streams.dev.traffic import live

    with _quietly():
        producer = KafkaProducer(**settings.kafka_python_config(), linger_ms=5)
        started = time.monotonic()
        for sent, message in enumerate(live(rate=rate)):
            if stop.is_set():
                break
            lead = str(message.get("userId") or message.get("anonymousId"))
            producer.send(settings.input_topics[0], key=lead.encode(), value=orjson.dumps(message))
            # Pace to `rate` messages per second on average.
            time.sleep(max(0.0, started + (sent + 1) / rate - time.monotonic()))
        producer.close(timeout=2)


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """A background helper that fails says so once, and does not take the worker down."""
    try:
        yield
    except Exception as error:  # reported, and the worker goes on
        print(f"leadscore dev: {error}", file=sys.stderr, flush=True)
