"""The worker's lifecycle around the scorer: the scores flush timer, and what a rebalance
and a shutdown do to the store, the transaction and the in-memory indexes.

A revocation takes back what an open transaction holds (exactly once) and flushes
what changed, so that the partitions' next owner reads it from the table; a
recovery rebuilds the decay, hottest-leads and waiting-SQL indexes from the table
and the changes not flushed yet; the worker is ready (`/ready`) once a rebalance
completes.
"""

from __future__ import annotations

import logging
from typing import Any

from scoring import decode_state
from streams.context import LeadscoreApp
from streams.kafka.topics import partition_for

log = logging.getLogger(__name__)


def register(app: LeadscoreApp) -> None:
    faust_app = app.faust
    partitions = app.settings.partitions

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
        app.live.ready = False
        if app.transaction is not None:
            # Exactly once: what the transaction holds is taken back, and its records are
            # read again from the committed offsets, here or by the partitions' next owner.
            async with app.store.lock:
                await app.transaction.abort()
                app.store.discard()
        # Leads may move to another worker: what changed goes to the table first.
        await app.store.flush()
        app.store.clear()
        app.live.funnel_cache.clear()

    @app.leads.on_recover
    async def rebuild_indexes() -> None:
        """The decay, hottest-leads and waiting-SQL indexes, for the partitions this worker
        now owns."""
        app.live.clear_indexes()
        fingerprint = app.rules.fingerprint
        for lead_key, stored in app.leads.items():
            state = decode_state(stored)
            app.live.index(lead_key, state)
            app.live.outdated.consider(
                lead_key, partition_for(lead_key, partitions), state, fingerprint
            )
        # And the changes not in RocksDB yet: a record being handled when the rebalance
        # began changed its lead after the revocation's flush, and read again, it will
        # be skipped as applied.
        owned = set(app.owned_partitions())
        for lead_key, (partition, pending) in app.store.pending():
            if partition in owned:
                app.live.index(lead_key, pending)
                app.live.outdated.consider(lead_key, partition, pending, fingerprint)
        log.info(
            "indexes rebuilt: %d leads with a coming crossing, %d SQLs waiting for a rep, "
            "%d leads to bring to rules %s",
            len(app.live.crossings),
            len(app.live.waiting),
            len(app.live.outdated),
            app.rules.version,
        )

    @faust_app.on_rebalance_complete.connect
    async def now_ready(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        app.live.ready = True
