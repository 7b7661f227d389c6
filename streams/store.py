"""Table writes held in memory and made durable in batches just before each offset commit.

Nearly every message changes its lead's state, and a Faust table write per
change (a RocksDB put, and a changelog record sent on its own) costs more
than scoring the message. So the agents keep what they change in memory:
the scoring agent the decoded lead states, the funnel agents the totals, the
recent transitions and the mql entry times. Just before Faust commits offsets
(the hook is `FlushBeforeCommit`) every changed value goes to RocksDB in one
write batch per table partition and to the table's changelog in record
batches. A lead that changed ten times since the last commit is written once.
The changed leads' score snapshots go to `lead-scores` every few seconds
(`LEADSCORE_SCORES_INTERVAL`), the latest of each.

Nothing is lost by waiting: until the flush is acknowledged no offset is
committed, so after a crash the messages are read again and applied again
(dedupe by messageId keeps that exact for lead state). A flush first waits
for every record the agents sent before it, so a state is never durable
before the transitions it caused. The tables stay
Faust's own: each is recovered from its changelog after a restart or
rebalance.

With exactly_once every write goes to the table as it happens, inside Faust's
transaction; only the snapshots wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faust.app._attached import Attachments
from faust.types import TP, TableT
from rocksdict import WriteBatch

from scoring import LeadState, decode_state, encode_state, next_crossing, snapshot_json

if TYPE_CHECKING:
    from streams.app import LeadscoreApp

STATE_CACHE_SIZE = 200_000  # decoded states kept per worker (a few KiB each)

# A value to write: bytes, None to delete the key, or a function that gives the bytes
# at flush time (for values that change often and cost to encode).
Value = bytes | None | Callable[[], bytes]
Table = TableT[bytes, bytes]


class Changes:
    """What changed since the last flush: lead states, and other table values."""

    def __init__(self) -> None:
        self.leads: dict[bytes, tuple[int, LeadState]] = {}  # lead -> (partition, state)
        self.values: dict[tuple[str, bytes], tuple[Table, int, Value]] = {}

    def __bool__(self) -> bool:
        return bool(self.leads or self.values)


class LeadStore:
    """Decoded lead states of this worker, and the table writes not flushed yet."""

    def __init__(self, app: LeadscoreApp) -> None:
        self.app = app
        self.write_through = app.settings.processing_guarantee == "exactly_once"
        self.states: dict[bytes, LeadState] = {}
        self.changed = Changes()
        self.flushing = Changes()
        # Leads changed since their last snapshot went to `lead-scores`.
        self.unpublished: dict[bytes, tuple[int, LeadState]] = {}
        self._lock = asyncio.Lock()

    def get(self, lead_key: bytes) -> LeadState | None:
        state = self.states.get(lead_key)
        if state is not None:
            return state
        stored = self.app.leads.get(lead_key)  # the table: after a restart or rebalance
        return None if stored is None else decode_state(stored)

    def put(self, lead_key: bytes, partition: int, state: LeadState) -> None:
        if self.write_through:
            self.app.leads[lead_key] = encode_state(state)  # in the current transaction
        if len(self.states) >= STATE_CACHE_SIZE:
            # Rare: forget the decoded states the table already has.
            pending = {**self.flushing.leads, **self.changed.leads}
            self.states = {key: unflushed for key, (_, unflushed) in pending.items()}
        self.states[lead_key] = state
        self.changed.leads[lead_key] = (partition, state)
        # The in-memory indexes at once: the web views read them.
        self.app.crossings.set(lead_key, next_crossing(state, self.app.rules))
        self.app.hot.update(lead_key, state, self.app.rules)

    def table_get(self, table: Table, key: bytes) -> bytes | None:
        """A table's value, with the writes not flushed yet."""
        for changes in (self.changed, self.flushing):
            pending = changes.values.get((table.name, key))
            if pending is not None:
                value = pending[2]
                return value() if callable(value) else value
        return table.get(key)

    def table_put(self, table: Table, key: bytes, partition: int, value: Value) -> None:
        """Write `value` to `table` (None: delete the key) by the next commit."""
        if self.write_through:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value() if callable(value) else value
            return
        self.changed.values[table.name, key] = (table, partition, value)

    def clear(self) -> None:
        """Forget the decoded states (after a flush): the leads may move to another worker."""
        self.states.clear()

    async def flush(self, *, publish: bool = False) -> None:
        """Make every change durable; with `publish`, send the changed leads' snapshots."""
        async with self._lock:  # commits of several partitions may ask at once
            self.flushing, self.changed = self.changed, Changes()
            try:
                await self._flush(self.flushing, publish)
            except BaseException:
                self.changed.leads = {**self.flushing.leads, **self.changed.leads}
                self.changed.values = {**self.flushing.values, **self.changed.values}
                raise
            finally:
                self.flushing = Changes()

    async def _flush(self, changes: Changes, publish: bool) -> None:
        self.unpublished.update(changes.leads)
        if not changes and not (publish and self.unpublished):
            return
        app = self.app
        rules = app.rules
        # (table, partition) -> [(key, value)]; lead snapshots per partition.
        writes: dict[tuple[str, int], tuple[Table, list[tuple[bytes, bytes | None]]]] = {}
        snapshots: dict[int, list[tuple[bytes, bytes | None]]] = {}
        if not self.write_through:
            for lead_key, (partition, state) in changes.leads.items():
                _, records = writes.setdefault((app.leads.name, partition), (app.leads, []))
                records.append((lead_key, encode_state(state)))
        if publish:
            for lead_key, (partition, state) in self.unpublished.items():
                snapshot = snapshot_json(state, rules)
                snapshots.setdefault(partition, []).append((lead_key, snapshot))
            self.unpublished = {}
        for (name, key), (table, partition, value) in changes.values.items():
            _, records = writes.setdefault((name, partition), (table, []))
            records.append((key, value() if callable(value) else value))

        producer = app.faust.producer
        await producer.maybe_start()
        kafka = producer._ensure_producer()  # type: ignore[attr-defined]  # aiokafka's: batches
        # What the agents sent before these changes (transitions, alerts) is delivered
        # before the changes are durable: a crash in between then replays the messages
        # and sends it again, instead of finding them applied and sending nothing.
        await kafka.flush()
        pending: list[tuple[Table | None, int, Awaitable[Any]]] = []
        for (_, partition), (table, records) in writes.items():
            _write_store(table, partition, records)
            changelog = table.changelog_topic.get_topic_name()
            for future in await _send(kafka, changelog, partition, records):
                pending.append((table, partition, future))
        scores = app.scores.get_topic_name()
        for partition, records in snapshots.items():
            for future in await _send(kafka, scores, partition, records):
                pending.append((None, partition, future))
        sent = await asyncio.gather(*(future for _, _, future in pending))
        # Recovery reads a changelog from the last offset known to be in RocksDB.
        persisted: dict[tuple[str, int], tuple[Table, int]] = {}
        for (written, partition, _), metadata in zip(pending, sent, strict=True):
            if written is not None:
                persisted[written.name, partition] = (written, metadata.offset)
        for (_, partition), (table, offset) in persisted.items():
            store: Any = table.data
            store.set_persisted_offset(
                TP(table.changelog_topic.get_topic_name(), partition), offset
            )


def _write_store(table: Table, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
    """One RocksDB write batch into a table's store of `partition` (faust's rocksdict store;
    faust-streaming is pinned, and this is how its own changelog recovery writes)."""
    batch = WriteBatch(raw_mode=True)
    for key, value in records:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    store: Any = table.data
    store._db_for_partition(partition).write(batch)


async def _send(
    kafka: Any, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
) -> list[Awaitable[Any]]:
    """`records` to one partition in as few record batches as the producer allows."""
    # Tracked in the producer's metadata: `send_batch` only checks that the topic is
    # known *now*, and aiokafka refreshes only the topics it tracks, so an untracked
    # topic can drop out of its metadata and leave a batch waiting for a leader forever.
    kafka.client.add_topic(topic)
    futures = []
    batch = kafka.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full
            futures.append(await kafka.send_batch(batch, topic, partition=partition))
            batch = kafka.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    futures.append(await kafka.send_batch(batch, topic, partition=partition))
    return futures


class FlushBeforeCommit(Attachments):
    """Faust's attachments, which it publishes (and awaits) just before it commits the
    offsets of a partition: where the held table writes are made durable first."""

    def __init__(self, app: Any, flush: Callable[[], Awaitable[None]]) -> None:
        super().__init__(app)
        self._flush = flush

    async def publish_for_tp_offset(self, tp: TP, offset: int) -> list[Awaitable[Any]]:
        await self._flush()
        return await super().publish_for_tp_offset(tp, offset)
