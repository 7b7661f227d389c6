"""Decay demotions with no new message, and the index they come from.

Every `decay_check_interval` seconds the worker takes the leads whose
crossing instant has passed (wall clock) out of its index and sends each a
decay check through the lead's partition of the repartition topic, so the
agent, the only writer of lead state, applies it between the lead's
messages. A partition gets its checks only once the scorer has handled every
record that was in its input topics then: a message that arrived before the
crossing passed is applied before the demotion, as replay would. After each
rebalance the index is rebuilt from the table.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from faust.types import TP

from scoring import decode_state
from streams.app import CONTROL_HEADER, DECAY_CHECK, LeadscoreApp
from streams.consumer import DeliveringConsumer
from streams.topics import partition_for

log = logging.getLogger(__name__)


def register(app: LeadscoreApp) -> None:
    faust_app = app.faust

    partitions = app.settings.partitions

    @faust_app.timer(interval=app.settings.decay_check_interval)
    async def send_decay_checks() -> None:
        now = time.time()
        due = app.crossings.pop_due(now)
        if not due:
            return
        by_partition: dict[int, list[tuple[bytes, float]]] = {}
        for lead_key, instant in due:
            by_partition.setdefault(partition_for(lead_key, partitions), []).append(
                (lead_key, instant)
            )
        behind = await _partitions_behind(app, set(by_partition))
        # Outside any transaction, even with exactly_once: a decay check is idempotent,
        # and a transaction of the timer's own would wait for the next commit of its
        # partition, which may never come when the lead has gone quiet.
        producer = app.faust.producer
        await producer.maybe_start()
        topic = app.repartition.get_topic_name()
        for partition, leads in by_partition.items():
            for lead_key, instant in leads:
                if partition in behind:
                    app.crossings.set(lead_key, instant)  # again at the next sweep
                    continue
                await producer.send(
                    topic,
                    lead_key,
                    repr(now).encode(),
                    partition,
                    None,
                    {CONTROL_HEADER: DECAY_CHECK},
                )

    @faust_app.timer(interval=app.settings.scores_interval)
    async def publish_scores() -> None:
        """At least once: a flush, whose snapshots go out with the state they show (the
        latest of each lead changed since the last flush, however often it changed),
        also when no offset commit comes. Exactly once, each commit publishes them."""
        await app.store.flush()

    @faust_app.on_before_shutdown.connect
    async def last_flush(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Faust has committed (and so flushed the state and its snapshots) by now.
        await app.store.flush()
        if app.transaction is not None:
            await app.transaction.stop()

    @faust_app.on_partitions_revoked.connect
    async def not_ready(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        app.ready = False
        if app.transaction is not None:
            # Exactly once: what the transaction holds is taken back, and its records are
            # read again from the committed offsets, here or by the partitions' next owner.
            async with app.store.lock:
                await app.transaction.abort()
                app.store.discard()
        # Leads may move to another worker: what changed goes to the table first.
        await app.store.flush()
        app.store.clear()
        app.funnel_cache.clear()

    @app.leads.on_recover
    async def rebuild_indexes() -> None:
        """The decay, hottest-leads and waiting-SQL indexes, for the partitions this worker
        now owns."""
        app.clear_indexes()
        for lead_key, stored in app.leads.items():
            app.index(lead_key, decode_state(stored))
        log.info(
            "indexes rebuilt: %d leads with a coming crossing, %d SQLs waiting for a rep",
            len(app.crossings),
            len(app.waiting),
        )

    @faust_app.on_rebalance_complete.connect
    async def now_ready(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        app.ready = True


async def _partitions_behind(app: LeadscoreApp, partitions: set[int]) -> set[int]:
    """Those of `partitions` whose input records the scorer has not all handled yet."""
    tps = [TP(topic, p) for topic in app.settings.input_topics for p in partitions]
    consumer = app.faust.consumer
    ends = await consumer.highwaters(*tps)
    behind = set()
    for tp in tps:
        # The intake's next offset: after a restart, the committed one, so that a worker
        # whose partitions have had no record since (an idle lead's SLA, its decay) is not
        # taken to be behind them until a new record comes.
        upcoming = cast(DeliveringConsumer, consumer).next_offset(tp)
        if upcoming is None:  # nothing read or sought yet: what the scorer handled
            upcoming = app.positions.get((tp.topic, tp.partition), -1) + 1
        if upcoming < (ends.get(tp) or 0):
            behind.add(tp.partition)
    return behind
