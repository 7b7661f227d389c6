"""Table writes held in memory and made durable in batches just before each offset commit.

Nearly every message changes its lead's state, and a Faust table write per
change (a RocksDB put, and a changelog record sent on its own) costs more
than scoring the message. So the scorer and the funnel keep what they change
in memory: the decoded lead states, the funnel totals, the recent
transitions and the mql entry times. Once before each offset commit (the
hook is `streams.kafka.consumer.use_before_commit`) every changed value goes to
the table's changelog in record batches and, once Kafka has them, to RocksDB
in one write batch per table partition. A lead that changed ten times since the last commit is
written once, and its latest score snapshot goes to `lead-scores` in the
same flush (flushes also come every `LEADSCORE_SCORES_INTERVAL` without a
commit).

Nothing is lost by waiting: until the flush is acknowledged no offset is
committed, so after a crash the messages are read again, and those the
flushed state already holds are skipped by position (`scoring.state`). A flush first waits
for every record the scorer sent before it, so a state is never durable
before the transitions it caused. The tables stay Faust's own: each is
recovered from its changelog after a restart or rebalance.

A flush encodes thousands of values; it lets the event loop turn every few
milliseconds, so the scorer goes on meanwhile (its changes go to the next
flush) and a transition is not held up behind it.

Records the scorer sends on to its own topics (claims, replies and messages for
another lead's partition) are held back with the changes (`hold`): sent at the end
of each fetch, or by the flush before it waits for deliveries, so a state is never
durable before what it counts on was sent, and the records to a partition keep
their order; items held in a row for one partition (claims) go in one record.

With exactly_once (`streams.kafka.transactions`) the changes wait for the offset
commit, which sends them inside the worker's transaction and commits it with
the offsets; RocksDB gets them only once the transaction has committed, so
it never holds state that a rebalance's abort takes back. The snapshots go
in the transaction too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from faust.types import TP, TableT, TopicT

from scoring import LeadState, decode_state, encode_state, snapshot_json
from streams.kafka.transport import kafka_producer
from streams.state.rocksdb import store_of

if TYPE_CHECKING:
    from streams.context import LeadscoreApp
    from streams.kafka.transactions import Transaction

STATE_CACHE_SIZE = 200_000  # decoded states kept per worker (a few KiB each)
TURN_AFTER_S = 0.002  # the longest a flush encodes without letting the event loop turn

# A value to write: bytes, None to delete the key, or a function that gives the bytes
# at flush time (for values that change often and cost to encode).
Value = bytes | None | Callable[[], bytes]
Table = TableT[bytes, bytes]


@dataclass(slots=True)
class Held:
    """A record held back (`LeadStore.hold`): `value`, or a batch of `items` sent as one
    JSON list."""

    topic: TopicT
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]]
    items: list[Any] | None = None


class Changes:
    """What changed since the last flush: lead states, other table values, and the
    records held back to be sent with them."""

    def __init__(self) -> None:
        # lead -> (partition, state); None: the lead was deleted.
        self.leads: dict[bytes, tuple[int, LeadState | None]] = {}
        self.values: dict[tuple[str, bytes], tuple[Table, int, Value]] = {}
        # (topic, partition) -> records held back, in the order they were sent.
        self.held: dict[tuple[str, int], list[Held]] = {}

    def __bool__(self) -> bool:
        return bool(self.leads or self.values or any(self.held.values()))  # (lists emptied as sent)


class LeadStore:
    """Decoded lead states of this worker, and the table writes not flushed yet."""

    def __init__(self, app: LeadscoreApp) -> None:
        self.app = app
        self.transaction: Transaction | None = None  # with exactly_once (see `commit`)
        self.states: dict[bytes, LeadState] = {}
        self.changed = Changes()
        self.flushing = Changes()
        # Deliveries of what the scorer sent since the last flush (see `sent`).
        self.deliveries: list[Awaitable[Any]] = []
        # (topic, partition) -> offset of the last record whose effects are durable.
        self.durable: dict[tuple[str, int], int] = {}
        # Held while a flush or commit runs (and, exactly once, while a record is handled).
        self.lock = asyncio.Lock()

    def get(self, lead_key: bytes, partition: int) -> LeadState | None:
        """The lead's state; `partition` is the lead's (`streams.kafka.topics.partition_for`)."""
        state = self.states.get(lead_key)
        if state is not None:
            return state
        for changes in (self.changed, self.flushing):
            pending = changes.leads.get(lead_key)
            if pending is not None:
                return pending[1]  # deleted since the last flush (else it was in `states`)
        stored = _read_store(self.app.leads, partition, lead_key)  # after a restart or rebalance
        return None if stored is None else decode_state(stored)

    def pending(self) -> list[tuple[bytes, tuple[int, LeadState | None]]]:
        """The lead changes not flushed yet, the latest of each: (lead, (partition, state))."""
        return list({**self.flushing.leads, **self.changed.leads}.items())

    def put(self, lead_key: bytes, partition: int, state: LeadState) -> None:
        if len(self.states) >= STATE_CACHE_SIZE:
            # Rare: forget the decoded states the table already has.
            self.states = {
                key: unflushed for key, (_, unflushed) in self.pending() if unflushed is not None
            }
        self.states[lead_key] = state
        self.changed.leads[lead_key] = (partition, state)
        self.app.live.index(lead_key, state)  # at once: the web views read them

    def delete(self, lead_key: bytes, partition: int) -> None:
        """Forget the lead: a tombstone to its table and to `lead-scores` by the next flush."""
        self.states.pop(lead_key, None)
        self.changed.leads[lead_key] = (partition, None)
        self.app.live.index(lead_key, None)

    def table_get(self, table: Table, key: bytes, partition: int) -> bytes | None:
        """A table's value (`key` of table partition `partition`), with the writes not
        flushed yet."""
        for changes in (self.changed, self.flushing):
            pending = changes.values.get((table.name, key))
            if pending is not None:
                value = pending[2]
                return value() if callable(value) else value
        return _read_store(table, partition, key)

    def table_put(self, table: Table, key: bytes, partition: int, value: Value) -> None:
        """Write `value` to `table` (None: delete the key) by the next commit."""
        self.changed.values[table.name, key] = (table, partition, value)

    def hold(
        self,
        topic: TopicT,
        partition: int,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Send a record the scorer owes, as `LeadscoreApp.emit` does, with the next
        `send_held` (at the end of each fetch) or flush: with the changes made before it,
        so never after a state that counts on it is durable. The records held for a
        partition are sent in the order they were held."""
        self._held_for(topic, partition).append(Held(topic, key, value, headers))

    def hold_item(
        self,
        topic: TopicT,
        partition: int,
        key: bytes,
        headers: list[tuple[str, bytes]],
        item: Any,
        most: int,
    ) -> None:
        """`hold` an item of a batch record: items held one after the other for a
        partition, with the same `headers`, go in one record (at most `most` each), a
        JSON list in the order they were held."""
        queue = self._held_for(topic, partition)
        last = queue[-1] if queue else None
        if last is None or last.items is None or last.headers != headers or len(last.items) >= most:
            queue.append(Held(topic, key, None, headers, [item]))
        else:
            last.items.append(item)

    def _held_for(self, topic: TopicT, partition: int) -> list[Held]:
        return self.changed.held.setdefault((topic.get_topic_name(), partition), [])

    async def send_held(self) -> None:
        """The records held so far, sent now (their deliveries tracked as `sent` says).

        Under the lock, so between commits: with exactly_once they go in the transaction
        that holds the changes made with them, and a flush never runs meanwhile."""
        if not self.changed.held:
            return
        async with self.lock:
            held, self.changed.held = self.changed.held, {}
            try:
                await self._send_held(held)
            except BaseException:
                self.changed.held = _joined(held, self.changed.held)  # what was not sent
                raise

    async def _send_held(self, held: Mapping[tuple[str, int], list[Held]]) -> None:
        """Send `held`, taking each record out once sent (what stays was not)."""
        emit = self.app.emit
        for (_, partition), records in held.items():
            sent = 0
            try:
                for record in records:
                    value = orjson.dumps(record.items) if record.value is None else record.value
                    await emit(record.topic, record.key, value, partition, record.headers)
                    sent += 1
            finally:
                del records[:sent]

    def sent(self, delivery: Awaitable[Any]) -> None:
        """Track the delivery of a record the scorer sent (a transition, an alert, a dead
        letter, a repartitioned message): the next flush fails unless it was delivered,
        so the offsets of its message are not committed."""
        self.deliveries.append(delivery)

    def clear(self) -> None:
        """Forget the decoded states (after a flush): the leads may move to another worker."""
        self.states.clear()

    def discard(self) -> None:
        """Forget every change not committed (exactly once, when a rebalance aborts the
        transaction): the tables hold the committed state, and the records since are
        read again."""
        self.changed = Changes()
        self.states.clear()
        self.deliveries.clear()

    async def flush(self) -> None:
        """Make every change durable, and send the changed leads' snapshots (at least once;
        with exactly_once the changes wait for `commit`, and this does nothing)."""
        if self.transaction is None:
            await self._durable()

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Exactly once: every change, its snapshots and `offsets` (the next records to
        read) in the worker's transaction, committed (`streams.kafka.transactions`)."""
        assert self.transaction is not None
        await self._durable(partial(self.transaction.commit, offsets))

    async def _durable(self, commit: Callable[[], Awaitable[None]] | None = None) -> None:
        async with self.lock:  # commits of several partitions may ask at once
            self.flushing, self.changed = self.changed, Changes()
            handled = dict(self.app.live.positions)
            try:
                await self._flush(self.flushing, commit)
                self.durable = handled
            except BaseException:
                self.changed.leads = {**self.flushing.leads, **self.changed.leads}
                self.changed.values = {**self.flushing.values, **self.changed.values}
                self.changed.held = _joined(self.flushing.held, self.changed.held)
                raise
            finally:
                self.flushing = Changes()

    async def _flush(
        self, changes: Changes, commit: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """The flush: `changes` and the changed leads' snapshots to Kafka (through the
        transaction's producer with `commit`, which then commits), then to RocksDB.

        The snapshots go with the state that they show: a lead made durable has its
        snapshot sent, so a crash cannot leave `lead-scores` behind a lead that then
        changes no more. The records held back with the changes go first."""
        await self._send_held(changes.held)
        await self._delivered()
        if not changes and commit is None:
            return
        app = self.app
        rules = app.rules
        # (table, partition) -> (table, partition, [(key, value)]); lead snapshots per partition.
        writes: dict[tuple[str, int], tuple[Table, int, list[tuple[bytes, bytes | None]]]] = {}
        snapshots: dict[int, list[tuple[bytes, bytes | None]]] = {}
        async for lead_key, (partition, state) in _turning(changes.leads.items()):
            *_, records = writes.setdefault((app.leads.name, partition), (app.leads, partition, []))
            if state is None:  # deleted: tombstones
                records.append((lead_key, None))
                snapshots.setdefault(partition, []).append((lead_key, None))
                continue
            records.append((lead_key, encode_state(state)))
            snapshots.setdefault(partition, []).append((lead_key, snapshot_json(state, rules)))
        for (name, key), (table, partition, value) in changes.values.items():
            *_, records = writes.setdefault((name, partition), (table, partition, []))
            records.append((key, value() if callable(value) else value))

        kafka: Any = kafka_producer(app.faust)
        if self.transaction is not None:
            kafka = await self.transaction.producer()
        sending: list[tuple[Table | None, int, Awaitable[Any]]] = []
        # At least once, who holds an identifier is durable before the leads are: a
        # hand-over deletes its lead and writes its new holder, and a kill between the
        # two writes must not leave the lead deleted and nobody holding its id (its
        # claim, read again, would find neither, and not send the lead's tombstones
        # again). The other way round, the claim finds the lead and hands it over again.
        phases = [list(writes.values())]
        if self.transaction is None and any(w[0] is app.identities for w in phases[0]):
            phases = [[w for w in phases[0] if w[0] is app.identities],
                      [w for w in phases[0] if w[0] is not app.identities]]  # fmt: skip
        for number, phase in enumerate(phases):
            if number:  # what the phases before sent is delivered
                await asyncio.gather(*(future for _, _, future in sending))
            for table, partition, records in phase:
                changelog = table.changelog_topic.get_topic_name()
                for future in await _send(kafka, changelog, partition, records):
                    sending.append((table, partition, future))
        scores = app.scores.get_topic_name()
        for partition, records in snapshots.items():
            for future in await _send(kafka, scores, partition, records):
                sending.append((None, partition, future))
        sent = await asyncio.gather(*(future for _, _, future in sending))
        if commit is not None:
            await commit()
        # RocksDB only once the changelog has it: a local state ahead of its changelog
        # would skip, as applied, messages whose effect another worker never gets.
        for table, partition, records in writes.values():
            store_of(table).write(partition, records)
        # Recovery reads a changelog from the last offset known to be in RocksDB.
        persisted: dict[tuple[str, int], tuple[Table, int]] = {}
        for (written, partition, _), metadata in zip(sending, sent, strict=True):
            if written is not None:
                persisted[written.name, partition] = (written, metadata.offset)
        for (_, partition), (table, offset) in persisted.items():
            store: Any = table.data
            store.set_persisted_offset(
                TP(table.changelog_topic.get_topic_name(), partition), offset
            )

    async def _delivered(self) -> None:
        """Wait until what was sent so far is delivered; raise if the scorer's was not.

        Before the changes are made durable: a crash in between then replays their
        messages and sends again what they caused (transitions, alerts, dead letters),
        instead of finding them applied and sending nothing. A failed delivery fails
        this flush, and so the commit, and every flush after it: it stays tracked.
        """
        producer = self.app.faust.producer
        await producer.maybe_start()
        await kafka_producer(self.app.faust).flush()
        delivered = len(self.deliveries)
        await asyncio.gather(*self.deliveries[:delivered])
        del self.deliveries[:delivered]


T = TypeVar("T")


def _joined(
    earlier: Mapping[tuple[str, int], list[Held]], later: Mapping[tuple[str, int], list[Held]]
) -> dict[tuple[str, int], list[Held]]:
    """Two sets of held records as one, `earlier`'s first on each partition."""
    joined: dict[tuple[str, int], list[Held]] = {}
    for held in (earlier, later):
        for target, records in held.items():
            if records:
                joined.setdefault(target, []).extend(records)
    return joined


async def _turning(items: Iterable[T]) -> AsyncIterator[T]:
    """`items`, letting the event loop turn every TURN_AFTER_S."""
    clock = time.perf_counter
    turn_at = clock() + TURN_AFTER_S
    for item in items:
        yield item
        if clock() >= turn_at:
            await asyncio.sleep(0)
            turn_at = clock() + TURN_AFTER_S


def _read_store(table: Table, partition: int, key: bytes) -> bytes | None:
    """`key` from the RocksDB of a table partition (one function, so that
    benchmarks/scorer_path.py can stand a dictionary in for RocksDB)."""
    return store_of(table).read(partition, key)


async def _send(
    kafka: Any, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
) -> list[Awaitable[Any]]:
    """`records` to one partition in as few record batches as the producer allows."""
    futures = []
    batch = kafka.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full
            futures.append(await kafka.send_batch(batch, topic, partition=partition))
            batch = kafka.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    futures.append(await kafka.send_batch(batch, topic, partition=partition))
    return futures
