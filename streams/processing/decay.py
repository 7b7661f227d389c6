"""Decay demotions with no new message, and the index they come from.

Every `decay_check_interval` seconds the worker takes the leads whose
crossing instant has passed (wall clock) out of its index and sends each a
decay check through the lead's partition of the repartition topic, so the
agent, the only writer of lead state, applies it between the lead's
messages. A partition gets its checks only once the scorer has handled every
record that was in its input topics then: a message that arrived before the
crossing passed is applied before the demotion, as replay would. A lead whose
check was sent stays in the index, due again RESEND_AFTER_S later, until the
applied check re-indexes it: a check lost on its way is sent again.
After each rebalance the index is rebuilt (`streams.processing.lifecycle`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from faust.types import TP

from streams.context import CONTROL_HEADER, DECAY_CHECK, LeadscoreApp
from streams.kafka.topics import partition_for

log = logging.getLogger(__name__)

WAIT_WARNING_S = 30.0  # a partition's checks waiting this long for the scorer: a warning
RESEND_AFTER_S = 30.0  # a sent check not applied by then is sent again
ENDS_TIMEOUT_S = 10.0  # the longest a sweep waits for the input's end offsets


def register(app: LeadscoreApp) -> None:
    faust_app = app.faust

    partitions = app.settings.partitions
    # Partition -> since when its due checks have waited for the scorer to catch up.
    waiting_since: dict[int, float] = {}

    @faust_app.timer(interval=app.settings.decay_check_interval)
    async def send_decay_checks() -> None:
        now = time.time()
        due = app.live.crossings.pop_due(now)
        if not due:
            return
        by_partition: dict[int, list[tuple[bytes, float]]] = {}
        for lead_key, instant in due:
            by_partition.setdefault(partition_for(lead_key, partitions), []).append(
                (lead_key, instant)
            )
        behind = await partitions_behind(app, set(by_partition))
        _note_waiting(waiting_since, behind, set(by_partition), now)
        # Outside any transaction, even with exactly_once: a decay check is idempotent,
        # and a transaction of the timer's own would wait for the next commit of its
        # partition, which may never come when the lead has gone quiet.
        producer = app.faust.producer
        await producer.maybe_start()
        topic = app.repartition.get_topic_name()
        resend_at = now + max(RESEND_AFTER_S, app.settings.decay_check_interval)
        for partition, leads in by_partition.items():
            for lead_key, instant in leads:
                if partition in behind:
                    app.live.crossings.set(lead_key, instant)  # again at the next sweep
                    continue
                # Sent again later unless the check, applied, re-indexes the lead first: a
                # check lost on its way (a failed send, a rebalance) does not lose the
                # demotion.
                app.live.crossings.set(lead_key, resend_at)
                await producer.send(
                    topic,
                    lead_key,
                    repr(now).encode(),
                    partition,
                    None,
                    {CONTROL_HEADER: DECAY_CHECK},
                )


def _note_waiting(
    waiting_since: dict[int, float], behind: dict[int, str], due: set[int], now: float
) -> None:
    """Warn when a partition's due checks have waited WAIT_WARNING_S for the scorer to
    handle its input, and again every WAIT_WARNING_S while it stays behind (a partition
    that stays behind holds its demotions back)."""
    for partition in due - set(behind):
        waiting_since.pop(partition, None)
    for partition, detail in behind.items():
        since = waiting_since.setdefault(partition, now)
        if since <= now - WAIT_WARNING_S:
            log.warning(
                "partition %d: decay and SLA checks have waited %.0f s for the scorer to "
                "catch up with its input (%s)",
                partition,
                now - since,
                detail,
            )
            waiting_since[partition] = now  # again in WAIT_WARNING_S, if still behind


async def partitions_behind(app: LeadscoreApp, partitions: set[int]) -> dict[int, str]:
    """Those of `partitions` whose input records the scorer has not all handled yet, each
    with the offsets that show it."""
    tps = [TP(topic, p) for topic in app.settings.input_topics for p in partitions]
    consumer = app.faust.consumer
    try:
        # Through Faust's consumer thread; a sweep waits for no stuck call.
        ends = await asyncio.wait_for(consumer.highwaters(*tps), ENDS_TIMEOUT_S)
    except TimeoutError:
        log.warning("no end offsets in %.0f s: the checks wait for the next sweep", ENDS_TIMEOUT_S)
        return {p: "end offsets not known" for p in partitions}
    behind: dict[int, str] = {}
    for tp in tps:
        # After a restart the committed offset: a worker whose partitions have had no
        # record since (an idle lead's SLA, its decay) is not behind them.
        upcoming = app.next_offset(tp)
        end = ends.get(tp) or 0
        if upcoming < end:
            behind[tp.partition] = f"{tp.topic}: next offset {upcoming}, end {end}"
    return behind
