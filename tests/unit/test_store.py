"""The store's held records: sent in the order they were held, per partition, with the
items of one batch kind held one after the other packed into one record."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.state.store import LeadStore

CLAIMS = [("leadscore-control", b"claims")]
RELEASE = [("leadscore-control", b"release")]


class Topic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class Sender:
    """What `LeadStore` needs of the app to send: `emit`, which records each record (and
    fails once after `fail_after` records, if set)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, int | None, bytes | None, Any]] = []
        self.fail_after = fail_after

    async def emit(
        self, topic: Topic, key: bytes | None, value: bytes, partition: int | None, headers: Any
    ) -> None:
        if self.fail_after is not None and len(self.sent) == self.fail_after:
            self.fail_after = None
            raise ConnectionError("broker gone")
        kind = headers[0][1].decode()
        body = orjson.loads(value) if kind == "claims" else value
        self.sent.append((topic.get_topic_name(), partition, key, (kind, body)))


def held_for(store: LeadStore, topic: Topic) -> None:
    """Claims c1, c2 to partition 1, a release, c3 to partition 1, and c4 to partition 2."""
    store.hold_item(topic, 1, b"claims", CLAIMS, "c1", most=10)
    store.hold_item(topic, 2, b"claims", CLAIMS, "c4", most=10)
    store.hold_item(topic, 1, b"claims", CLAIMS, "c2", most=10)
    store.hold(topic, 1, b"email:a@x.example", b"r", RELEASE)
    store.hold_item(topic, 1, b"claims", CLAIMS, "c3", most=10)


def test_held_records_keep_their_order_per_partition_and_items_in_a_row_go_as_one() -> None:
    sender = Sender()
    store = LeadStore(sender)  # type: ignore[arg-type]
    topic = Topic("repartition")
    held_for(store, topic)
    assert sender.sent == []  # nothing goes before `send_held` (or a flush)
    asyncio.run(store.send_held())
    assert sender.sent == [
        ("repartition", 1, b"claims", ("claims", ["c1", "c2"])),
        ("repartition", 1, b"email:a@x.example", ("release", b"r")),
        ("repartition", 1, b"claims", ("claims", ["c3"])),
        ("repartition", 2, b"claims", ("claims", ["c4"])),
    ]
    assert not store.changed  # all sent
    asyncio.run(store.send_held())
    assert len(sender.sent) == 4  # and only once


def test_a_batch_record_holds_at_most_its_share_of_items() -> None:
    sender = Sender()
    store = LeadStore(sender)  # type: ignore[arg-type]
    topic = Topic("repartition")
    for item in range(5):
        store.hold_item(topic, 0, b"claims", CLAIMS, item, most=2)
    asyncio.run(store.send_held())
    assert [body for *_, (_, body) in sender.sent] == [[0, 1], [2, 3], [4]]


def test_records_whose_sending_failed_are_held_again_before_those_held_since() -> None:
    sender = Sender(fail_after=1)
    store = LeadStore(sender)  # type: ignore[arg-type]
    topic = Topic("repartition")
    held_for(store, topic)
    with pytest.raises(ConnectionError):
        asyncio.run(store.send_held())
    store.hold_item(topic, 1, b"claims", CLAIMS, "c5", most=10)
    asyncio.run(store.send_held())
    # The first record went before the failure, and only once; c5, held after the
    # failure, comes after everything held before it (with c3: they were held in a row).
    assert sender.sent == [
        ("repartition", 1, b"claims", ("claims", ["c1", "c2"])),
        ("repartition", 1, b"email:a@x.example", ("release", b"r")),
        ("repartition", 1, b"claims", ("claims", ["c3", "c5"])),
        ("repartition", 2, b"claims", ("claims", ["c4"])),
    ]
