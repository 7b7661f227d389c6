"""The worker's Kafka consumer: Faust's, with cheaper hand-overs of records.

The scoring and funnel topics' records skip Faust's per-record path altogether
(see `Intake`); the other topics' records (the tables' changelogs, while they
recover, and sales-alerts for the webhook agent) take it, with one cost cut:

Faust's consumer loop (`Consumer._drain_messages`) hands every record to the
agents with `wait_first(deliver(record), suspend_flow.wait())`: a race that
lets a rebalance abandon a delivery stuck on a full stream buffer. It costs
four tasks and an `asyncio.wait` per record, more than a tenth of what a
leadscore worker spends per message. Most deliveries never wait (the record
goes straight into the stream's buffer), so `DeliveringConsumer` runs the
delivery's first step inline and races only the deliveries that do wait,
exactly as Faust does. faust-streaming is pinned, and this overrides the one
`wait_first` call of its consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode.services import WaitArgT, WaitResults

log = logging.getLogger(__name__)

# The longest the intake handles records without letting the event loop turn: the
# producer's sender, the commits and the web server run in between.
YIELD_AFTER_S = 0.002


Handle = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Intake:
    """Records of the topics in `handlers`, handed by the consumer to their topic's handler
    as it fetches them.

    Faust delivers each record through the conductor into a stream: an Event is
    made, put in the stream's queue and taken out by the agent's iterator, with
    sensor calls at each step. For the scoring topics that path cost more than
    the scoring, so the consumer keeps those records out of it and calls the
    handler with each one (a Faust message), in offset order per partition.
    The rest is as Faust does it: the message is tracked before and acked
    after the handler returns, so offsets are committed only past handled
    records, and a rebalance waits for the record in hand; a record that
    the handler fails on is not acked, and the error stops the worker. Records
    fetched when a rebalance begins are dropped, as Faust drops them, and read
    again from the committed offsets.
    """

    handlers: Mapping[str, Handle]
    # Awaited after the records of each fetch were handed over (e.g. to send what their
    # handling held back, in batches).
    after_fetch: Callable[[], Awaitable[None]] | None = None

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self.handlers)


@dataclass
class ConsumerHooks:
    """What leadscore plugs into its worker's consumer, per app (`streams.kafka.transport`
    holds one per transport, and gives it to the consumer it creates)."""

    intake: Intake | None = None
    # Awaited once before each offset commit, with the offsets Faust chose to commit.
    before_commit: Callable[[Mapping[TP, int]], Awaitable[None]] | None = None
    # Whether `before_commit` commits the offsets itself (in a transaction of the
    # worker's, `streams.kafka.transactions`), and records are read committed.
    transactional: bool = False


class DeliveringConsumer(faust_aiokafka.Consumer):
    hooks: ConsumerHooks
    # Per intake partition, the offset of the next record to hand over: where the last
    # seek went (to the committed offset, when an assignment begins), else one past the
    # last record handled. Faust's own read offset cannot tell: after its seek to the
    # committed offsets it holds the committed offset, the first record *not* read, and
    # elsewhere the last record read, so a fetch that began one record late showed no gap.
    _next: dict[TP, int]
    # Per partition, the gap (next offset expected, offset read) seen with nothing
    # handled since (see `_take`).
    _gaps_seen: dict[TP, tuple[int, int]]
    # Per partition, the first record handed over before the seek to the committed
    # offsets told where its assignment begins (see `seek_to_committed`).
    _first_unsought: dict[TP, int]

    def __init__(self, *args: Any, hooks: ConsumerHooks | None = None, **kwargs: Any) -> None:
        self.hooks = ConsumerHooks() if hooks is None else hooks  # read by Faust's __init__
        super().__init__(*args, **kwargs)
        self._next = {}
        self._gaps_seen = {}
        self._first_unsought = {}

    def next_offset(self, tp: TP) -> int | None:
        """The offset of the next record of `tp` the intake will hand over (None: not
        known yet, nothing read or sought since the assignment)."""
        return self._next.get(tp)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # Faust resumes the partitions before this seek, which runs in the consumer
        # thread: a fetch may hand records over meanwhile, from before the seek (then
        # fetched again after it, and passed over) or from after it (then not fetched
        # again). Either way the next record to hand over is past them: set back to the
        # committed offset, a partition with no record to come looked behind its input
        # for good (and held its decay checks back).
        #
        # Unless the first record handed lies past the committed offset: the offsets
        # between were not handed (transaction markers, aborted records, or records
        # a late fetch skipped), and the intake, with no offset to compare with then,
        # took no gap for them. Faust commits past offsets only once they are acked
        # or known as a gap, so they held the partition's commits back for good (the
        # chaos suite found it, exactly once). Read again from the committed offset,
        # the gap is checked as any other, and the records handed already are passed
        # over (they are acked: `_take`).
        before = dict(self._next)
        committed = await super().seek_to_committed()
        first_handed, self._first_unsought = self._first_unsought, {}
        for tp, offset in committed.items():
            if isinstance(offset, int) and offset >= 0:
                tp = TP(tp.topic, tp.partition)
                first = first_handed.get(tp)
                handed = self._next.get(tp)
                read_again = first is not None and first > offset
                if not read_again and handed is not None and handed != before.get(tp):
                    offset = max(offset, handed)  # handed over meanwhile
                self._next[tp] = offset
        return committed

    async def _seek(self, tp: TP, offset: int) -> None:
        await super()._seek(tp, offset)
        self._next[tp] = offset

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._next.pop(tp, None)
            self._gaps_seen.pop(tp, None)
            self._first_unsought.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        if not self.hooks.transactional:
            return super()._new_consumer_thread()
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        if self.hooks.transactional:
            return True  # committed in the transaction, by `before_commit`
        return await super()._commit(offsets)

    async def _handle_attached(self, commit_offsets: Any) -> None:
        # Faust's step just before it commits `commit_offsets`: it publishes the
        # messages attached to each partition's offset, one partition after another.
        before_commit = self.hooks.before_commit
        if before_commit is not None:
            assigned = self.assignment()
            await before_commit(
                {tp: offset for tp, offset in commit_offsets.items() if tp in assigned}
            )
        await super()._handle_attached(commit_offsets)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        generation = self.app.consumer_generation_id
        records, active = await super()._wait_next_records(timeout)
        if records and active is not None:
            records = await self._fetch_paused_again(records, active, generation)
        intake = self.hooks.intake
        if intake is None or not records:
            return records, active
        rest = {}
        for tp, batch in records.items():
            if tp.topic not in intake.topics:
                rest[tp] = batch
            elif active is None or tp in active or tp in self._buffered_partitions:
                await self._take(intake.handlers[tp.topic], tp, batch, generation)
        if intake.after_fetch is not None:
            await intake.after_fetch()
        return rest, active

    async def _fetch_paused_again(self, records: Any, active: set[TP], generation: int) -> Any:
        """The records of partitions paused while they were fetched, taken out; each such
        partition is set back to its batch's first offset, to be fetched again.

        `active` is Faust's live set of active partitions: a partition paused during the
        fetch (Faust pauses the assigned input partitions while tables recover) has left
        it. Faust drops such a batch and goes on from the consumer's position, past the
        batch, so that the next record read leaves a gap, which Faust takes for one of
        transaction markers and commits over: the batch was lost (the chaos suite found
        a few hundred messages a run). faust-streaming is pinned; this is its getmany's
        filter, done before it, with the seek it lacks. Not after a rebalance began
        (`generation` is the one the fetch began in): Faust then seeks every assigned
        partition to its committed offset once its tables have recovered.
        """
        paused = {
            tp: batch[0].offset
            for tp, batch in records.items()
            if batch and tp not in active and tp not in self._buffered_partitions
        }
        if not paused:
            return records
        if self.app.consumer_generation_id == generation:
            for tp, offset in paused.items():
                await self._fetch_again(tp, offset)
        return {tp: batch for tp, batch in records.items() if tp not in paused}

    async def _fetch_again(self, tp: TP, offset: int) -> None:
        """Set a partition still assigned back to `offset`, the first record of a batch not
        handled (or handled and not acked), so that the next fetch reads it again.

        A batch the consumer returns starts at the partition's position (aiokafka drops
        those a seek made stale), so this undoes no more than the batch's own reading.
        Faust leaves the position after a batch it drops and counts on its seek to the
        committed offsets at the end of a rebalance; but a batch fetched from that very
        offset, returned after the seek and dropped because the flow had not resumed
        yet, was then skipped for good where no offset had been committed (Faust reads
        no gap without a read offset): a takeover lost the killed worker's records.
        """
        if not self.should_stop and tp in self.assignment():
            # Never past the next record to hand over: a batch that began late is read
            # from there (and its gap checked) when it is fetched again.
            await self._seek(tp, min(offset, self._next.get(tp, offset)))

    async def _take(self, handle: Handle, tp: TP, records: Any, generation: int) -> None:
        """What Faust's `getmany` and `_drain_messages` do per record, then `handle` in place
        of the delivery to a stream, and the ack a stream would make."""
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        acks = self.app.topics.acks_enabled_for(tp.topic)
        read_offset = self._read_offset
        expected = self._next
        acked = self._acked_index[tp] if acks else None  # (Faust's set, updated in place)
        clock = time.perf_counter
        yield_at = clock() + YIELD_AFTER_S
        for record in records:
            if (
                not self.flow_active
                or self.should_stop
                or self.app.consumer_generation_id != generation
            ):
                await self._fetch_again(tp, record.offset)
                return
            offset = record.offset
            want = expected.get(tp)
            if want is None:  # no seek since the assignment (or a group without commits)
                want = offset
                self._first_unsought.setdefault(tp, offset)
            elif offset < want:
                continue  # handled in this assignment already (a batch read again)
            elif offset > want:
                if self._gaps_seen.get(tp) != (want, offset):
                    # Records `want`.. were not handed over: read again from `want` before
                    # taking the gap for transaction markers or aborted records (which
                    # Faust acks). A genuine gap shows again right away; a skip (a batch
                    # dropped without a seek back, a fetch begun past the seek) does not.
                    self._gaps_seen[tp] = (want, offset)
                    level = logging.DEBUG if self.hooks.transactional else logging.WARNING
                    log.log(level, "%s[%s]: fetched from %s, expected %s: reading again",
                            tp.topic, tp.partition, offset, want)  # fmt: skip
                    await self._fetch_again(tp, want)
                    return
                if acks:
                    await self._add_gap(tp, want, offset - 1)  # e.g. transaction markers
            if acked is not None and offset in acked:
                # Handed over and acked in this assignment already (before the seek to
                # the committed offsets, which then read it again: `seek_to_committed`).
                read_offset[tp] = offset
                expected[tp] = offset + 1
                self._gaps_seen.pop(tp, None)
                continue
            message = self._to_message(tp, record)
            if acks:
                self.track_message(message)
            try:
                await handle(message)
            except BaseException:
                self._unacked_messages.discard(message)  # not acked: read again
                raise
            if not self.flow_active or self.app.consumer_generation_id != generation:
                # A rebalance began while it was handled: the partition's offsets were
                # reset, and an ack now would write into the next assignment's (a stale
                # acked offset there held its commits back). It is read again from the
                # committed offset, and the lead's position tells it was applied.
                self._unacked_messages.discard(message)
                await self._fetch_again(tp, offset)
                return
            read_offset[tp] = offset
            expected[tp] = offset + 1
            if self._gaps_seen:
                self._gaps_seen.pop(tp, None)
            if acks:
                self.ack(message)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
            if clock() >= yield_at:
                await asyncio.sleep(0)
                yield_at = clock() + YIELD_AFTER_S

    async def wait_first(self, *coros: WaitArgT, timeout: Any = None) -> WaitResults:
        if (
            len(coros) != 2
            or timeout is not None
            or not asyncio.iscoroutine(coros[0])
            or self.suspend_flow.is_set()
            or self.should_stop
        ):
            return await super().wait_first(*coros, timeout=timeout)
        delivery = coros[0]
        suspended = coros[1]
        try:
            waiting_on = delivery.send(None)
        except StopIteration as done:
            _close(suspended)  # the race was not needed
            return WaitResults([delivery], [done.value], False)
        rest = asyncio.ensure_future(_resume(delivery, waiting_on))
        return await super().wait_first(rest, suspended)


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, reading only committed transactions' records (Faust does
    so only with its own exactly-once)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # aiokafka's, read when it starts
        return consumer


def _close(coro: WaitArgT) -> None:
    if asyncio.iscoroutine(coro):
        coro.close()


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Go on with `coro`, which has run its first step and yielded `waiting_on`
    (what `await coro` would do from there on, cancellation included)."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as error:  # thrown in, e.g. CancelledError: on to the coroutine
            try:
                waiting_on = coro.throw(error)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as done:
                return done.value
