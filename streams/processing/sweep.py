"""The rules sweep: leads with no new message brought to the rules in use, a bounded number
a second.

A worker started with new rules brings each lead over at its next message. The leads
that have none coming would keep their old scores, so after each rebalance the rebuild
of the indexes lists those of this worker's partitions still scored under earlier
rules, and every second up to `rules_sweep_rate` of them get a rules check through
their partition of the repartition topic, as decay checks do: the scorer, the only
writer of lead state, applies `scoring.bring_to_rules` at the check's instant. A
partition's checks wait until the scorer has handled the input that was there, so a
lead with a message still to come is brought over by the message. A check for a lead
brought over since (or deleted) changes nothing.
"""

from __future__ import annotations

import logging
import time

from streams.context import CONTROL_HEADER, RULES_CHECK, LeadscoreApp
from streams.processing.decay import partitions_behind

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
PROGRESS_EVERY_S = 30.0


def register(app: LeadscoreApp) -> None:
    outdated = app.live.outdated
    rate = app.settings.rules_sweep_rate

    @app.faust.timer(interval=INTERVAL_S)
    async def sweep_rules() -> None:
        if not rate or not app.live.ready or not (pending := outdated.partitions()):
            return
        now = time.time()
        behind = await partitions_behind(app, pending)
        leads = outdated.take(rate, pending - set(behind))
        producer = app.faust.producer
        await producer.maybe_start()
        topic = app.repartition.get_topic_name()
        headers = {CONTROL_HEADER: RULES_CHECK}
        for lead_key, partition in leads:
            await producer.send(topic, lead_key, repr(now).encode(), partition, None, headers)
        if not outdated:
            log.info(
                "rules sweep: %d leads sent to be brought to rules %s",
                outdated.found,
                app.rules.version,
            )
        elif now - outdated.reported_at >= PROGRESS_EVERY_S:
            outdated.reported_at = now
            log.info(
                "rules sweep: %d of %d leads still to bring to rules %s (%d a second)",
                len(outdated),
                outdated.found,
                app.rules.version,
                rate,
            )
