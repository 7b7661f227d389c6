"""leadscore's transport and store are plugged into Faust through its entry points, and the
broker URL's scheme selects them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import pytest

from streams.kafka.consumer import DeliveringConsumer
from streams.kafka.producer import TopicTrackingFaustProducer, TopicTrackingProducer
from streams.kafka.tansu import TansuConsumer
from streams.kafka.transport import (
    TansuTransport,
    Transport,
    kafka_producer,
    leadscore_transport,
    use_before_commit,
    use_intake,
)
from streams.settings import Settings
from streams.state.rocksdb import Store, store_of


def app_on(broker: Any, tmp_path: Path) -> faust.App:
    return faust.App(
        "transport-test",
        broker=broker,
        store="leadscore-rocksdb://",
        datadir=str(tmp_path),
        autodiscover=False,
    )


@pytest.mark.parametrize(
    ("broker", "transport", "consumer"),
    [
        ("kafka://k1:9092,k2:9093", Transport, DeliveringConsumer),
        ("tansu://127.0.0.1:9092", TansuTransport, TansuConsumer),
    ],
)
def test_the_broker_url_selects_the_transport(
    broker: str, transport: type, consumer: type, tmp_path: Path
) -> None:
    settings = Settings(broker=broker)
    app = app_on(settings.faust_broker, tmp_path)
    assert type(app.transport) is transport
    assert type(app.producer_transport) is transport
    assert type(app.consumer) is consumer
    assert isinstance(app.producer, TopicTrackingFaustProducer)
    hosts = [f"{url.host}:{url.port}" for url in app.conf.broker]
    assert hosts == settings.bootstrap_servers


def test_the_consumer_gets_the_hooks_set_before_it_exists(tmp_path: Path) -> None:
    app = app_on("leadscore://127.0.0.1:1", tmp_path)
    app.topics.add(app.topic("t"))

    async def handle(message: Any) -> None: ...

    async def before_commit(offsets: Any) -> None: ...

    use_intake(app, ["t"], handle)
    use_before_commit(app, before_commit, commits=True)
    consumer: Any = app.consumer
    assert consumer.hooks.intake.handlers == {"t": handle}
    assert consumer.hooks.before_commit is before_commit and consumer.hooks.transactional
    with pytest.raises(RuntimeError, match="consumer exists already"):
        use_intake(app, ["u"], handle)


def test_faust_s_own_transport_is_refused_with_what_to_use(tmp_path: Path) -> None:
    app = app_on("kafka://127.0.0.1:1", tmp_path)
    with pytest.raises(TypeError, match=r"leadscore:// broker URL.*aiokafka\.Transport"):
        leadscore_transport(app)


def test_the_tables_store_reads_and_writes_one_partition(tmp_path: Path) -> None:
    app = app_on("leadscore://127.0.0.1:1", tmp_path)
    table = app.Table("leads", partitions=2, key_type=bytes, value_type=bytes)
    store = store_of(table)
    assert isinstance(store, Store)
    store.write(1, [(b"a", b"1"), (b"b", b"2")])
    store.write(1, [(b"b", None)])
    assert (store.read(1, b"a"), store.read(1, b"b"), store.read(0, b"a")) == (b"1", None, None)


def test_the_aiokafka_producer_is_the_topic_tracking_one(tmp_path: Path) -> None:
    app = app_on("leadscore://127.0.0.1:1", tmp_path)
    producer: Any = app.producer
    assert producer._producer_type is TopicTrackingProducer
    with pytest.raises(faust.exceptions.NotReady):  # not started
        kafka_producer(app)
