"""Exactly once: the worker's own Kafka transaction, from one offset commit to the next.

Faust's exactly-once (a transactional producer per input partition, following
the stream's current event) lost and doubled transitions under kill -9 in
the chaos suite, and the scorer no longer takes Faust's agent path that it
follows. So with `exactly_once` the worker owns the transaction, as Kafka
Streams does: one transactional producer per worker sends everything the
scorer owes downstream (transitions, alerts, dead letters, repartitioned
records) and the changelogs of its tables, and each offset commit is the
transaction's end:

1. the store's flush sends the changed table values to their changelogs
   (inside the transaction) and waits for every send;
2. the consumed offsets go into the transaction (`send_offsets_to_transaction`);
3. the transaction commits: outputs, state and offsets at once;
4. RocksDB holds the flushed values (a crash before 3 leaves RocksDB ahead of
   the committed changelog, so an exactly-once worker rebuilds its tables
   from the changelog at every start).

A rebalance aborts the open transaction and drops the uncommitted state: the
partitions' next owner (perhaps this worker) reads again from the committed
offsets. The transactional id is kept in the data directory, so a worker
restarted on it fences its former self at once (its open transaction is
aborted); a worker on a new data directory waits for Kafka to abort it
(`TRANSACTION_TIMEOUT_S`). Consumers of the outputs read with
`isolation_level=read_committed`; they see a transition once, at the commit
that made it durable (so up to a commit interval late).

aiokafka 0.14 commits offsets in a transaction with the group id only (no
generation, KIP-447): a worker the group evicted while it still ran could
commit one more transaction for partitions it lost. The worker aborts
instead of committing once a rebalance has begun (`DeliveringConsumer`
drops an in-flight record's ack then), which leaves a window of one
commit for a worker frozen past its session timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KafkaTP
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.kafka.producer import TopicTrackingProducer

# Kafka aborts a transaction left open this long (a worker killed mid-transaction and
# not restarted on its data directory): read_committed consumers wait for it until then.
TRANSACTION_TIMEOUT_S = 20.0


class Transaction:
    """One transactional producer; a transaction begun by the first send after a commit."""

    def __init__(self, faust_producer: Any, group_id: str, data_dir: Path) -> None:
        self.faust_producer = faust_producer
        self.group_id = group_id
        self.transactional_id = f"{group_id}-{_worker_id(data_dir)}"
        self.kafka: Any = None
        self.open = False

    async def start(self) -> None:
        if self.kafka is not None:
            return
        faust_producer = self.faust_producer
        self.kafka = TopicTrackingProducer(
            **{**faust_producer._settings_default(), **faust_producer._settings_auth()},
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            transaction_timeout_ms=int(TRANSACTION_TIMEOUT_S * 1000),
        )
        await self.kafka.start()  # fences an earlier producer of the same id

    async def producer(self) -> Any:
        """The transactional producer, in a transaction."""
        await self.start()
        if not self.open:
            await self.kafka.begin_transaction()
            self.open = True
        return self.kafka

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Steps 2 and 3: `offsets` (the next records to read) and the transaction commit."""
        kafka = await self.producer()
        if offsets:
            await kafka.send_offsets_to_transaction(
                {
                    KafkaTP(tp.topic, tp.partition): OffsetAndMetadata(n, "")
                    for tp, n in offsets.items()
                },
                self.group_id,
            )
        self.open = False
        await kafka.commit_transaction()

    async def abort(self) -> None:
        if self.open:
            self.open = False
            await self.kafka.abort_transaction()

    async def stop(self) -> None:
        if self.kafka is not None:
            await self.abort()
            await self.kafka.stop()
            self.kafka = None


def _worker_id(data_dir: Path) -> str:
    """This worker's id, kept in its data directory (the same after a restart)."""
    path = data_dir / "transactional-id"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(uuid.uuid4().hex[:12])
    return path.read_text().strip()


class _InTransaction:
    """The app as the changelog recovery of a transactional worker sees it."""

    in_transaction = True

    def __init__(self, app: Any) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


class RecoveryPastMarkers(Recovery):
    """Faust's changelog recovery, for changelogs written in transactions.

    A committed transaction ends each partition it wrote with a commit marker,
    an offset no record has, so a recovery that waits for the partition's end
    offset waits for ever. Faust's recovery looks past it (once the consumer's
    position is there) only when the app runs Faust's own exactly-once, which
    it asks the app; this recovery asks an app that says so.
    """

    def __init__(self, app: Any, tables: Any, **kwargs: Any) -> None:
        super().__init__(_InTransaction(app), tables, **kwargs)  # type: ignore[arg-type]  # a view


class TransactionalTableManager(TableManager):
    """Faust's table manager, recovering with `RecoveryPastMarkers` (the app's
    `TableManager` setting, with exactly_once)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = RecoveryPastMarkers(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
