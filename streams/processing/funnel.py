"""Funnel analytics, computed in the stream from `lead-transitions`.

Two steps. The feed reads the transitions topic (partitioned by lead),
keeps when each lead entered mql (to time its way to sql), and forwards each
transition to the one-partition funnel topic, where the totals fold
them into one aggregate (`scoring.funnel.Funnel`) that GET /funnel reads
(routed to the worker that owns it). Their table writes wait in
`streams.state.store` until the next commit.

Each transition is counted once, however often it is read or sent: the feed
forwards a transition only if it is not among the ids of the lead's last
transitions it forwarded (the scorer may send a transition again after a
crash, at least once), with its origin (partition and offset in
`lead-transitions`); the totals fold in a record only past the last funnel
offset and the last origin offset of its source they hold (a crash of the
feed forwards the same transitions again, from the same origins). New
leads, which no transition announces, are sent to the same topic by the
scorer, one record per lead with the position of its first message as
origin: a message read again after a crash, its lead not yet durable, sends
the same origin again, and the totals skip it. So are the sales follow-ups
(`sales-alerts` has the webhook sink's agent), each with the position of the
message or decay check that caused it.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, cast

from pydantic import BaseModel

from scoring import Stage, Transition
from scoring.funnel import Funnel, LeadFunnel, Origin, Recent
from scoring.outputs import FollowUp
from streams.context import FUNNEL_KEY, ITEMS_PER_RECORD, RECENT_KEY, LeadscoreApp
from streams.kafka.transport import use_intake


def register(app: LeadscoreApp) -> None:
    store = app.store

    async def feed(message: Any) -> None:
        """A transition read back: forwarded to the funnel topic, unless counted before."""
        transition = Transition.model_validate_json(message.value)
        lead_key, partition = message.key, message.partition
        lead = LeadFunnel.decode(store.table_get(app.mql_since, lead_key, partition))
        if not lead.take(transition):
            return  # sent again: counted already
        hours_to_sql = lead.hours_to_sql(transition)
        store.table_put(app.mql_since, lead_key, partition, lead.encode())
        origin = Origin(source=f"{message.topic}:{partition}", offset=message.offset)
        record = {
            "transition": json.loads(message.value),
            "hours_to_sql": hours_to_sql,
            "origin": origin.model_dump(),
        }
        # Delivered before the feed's state and offset are committed (`LeadStore.sent`).
        sending = await app.funnel_topic.send(key=FUNNEL_KEY, value=json.dumps(record).encode())
        store.sent(sending)

    async def totals(message: Any) -> None:
        """A funnel record folded into the totals, unless folded in before."""
        record = json.loads(message.value)
        offset = message.offset
        origin = Origin.model_validate(record["origin"]) if "origin" in record else None
        funnel = funnel_of(app)
        if funnel.applied.take(offset, origin):
            if "new_lead" in record:
                funnel.add_new_leads(1)
            elif "gone" in record:
                funnel.remove_lead(Stage(record["gone"]))
            elif "follow_up" in record:
                figures = record["follow_up"]
                funnel.add_follow_up(figures["kind"], figures["working_hours"])
            else:
                transition = Transition.model_validate(record["transition"])
                funnel.add(transition, record["hours_to_sql"])
            # Encoded at the next flush, once however many transitions came by.
            store.table_put(app.funnel, FUNNEL_KEY, 0, partial(_json, funnel))
        recent = recent_of(app)
        if "transition" in record and recent.applied.take(offset, origin):
            recent.add(Transition.model_validate(record["transition"]))
            store.table_put(app.funnel, RECENT_KEY, 0, partial(_json, recent))

    # Handed the records as the scorer is (`streams.kafka.consumer.Intake`), one at a time.
    for topic, handle in ((app.transitions_in, feed), (app.funnel_topic, totals)):
        app.faust.topics.add(topic)
        use_intake(app.faust, topic.topics, app.between_commits_of(handle))

    @app.funnel.on_recover
    async def forget_totals() -> None:
        app.live.funnel_cache.clear()


# A message or decay check causes at most three follow-ups (breach, escalation, an act).
FOLLOW_UPS_PER_CAUSE = 4


def follow_up_record(follow_up: FollowUp, record: Any, index: int, nth: int) -> bytes:
    """The funnel record of the `nth` follow-up caused by the `index`-th message of
    `record` (a Faust message: the input's, or a decay check): sent again with the same
    origin when that record is read again."""
    source, position = _position(record, index)
    origin = Origin(source=f"follow-ups:{source}", offset=position * FOLLOW_UPS_PER_CAUSE + nth)
    figures = {"kind": follow_up.kind, "working_hours": follow_up.working_hours}
    return json.dumps({"follow_up": figures, "origin": origin.model_dump()}).encode()


def gone_lead(stage: Stage, record: Any, index: int = 0) -> bytes:
    """The funnel record of a lead that is gone (merged into another, or deleted) by the
    `index`-th message of `record` (or by `record`, a hand-over)."""
    source, position = _position(record, index)
    origin = Origin(source=source, offset=position)
    return json.dumps({"gone": stage.value, "origin": origin.model_dump()}).encode()


def new_lead(record: Any, index: int = 0) -> bytes:
    """The funnel record of a lead's first message: the `index`-th of `record` (a Faust
    message; a batch body holds many), whose position is the origin."""
    source, position = _position(record, index)
    origin = Origin(source=source, offset=position)
    return json.dumps({"new_lead": True, "origin": origin.model_dump()}).encode()


def _position(record: Any, index: int) -> tuple[str, int]:
    """Where the `index`-th message of `record` was read: the scorer's own partition
    (a repartitioned message's first reading may be on another, out of order here)."""
    return f"{record.topic}:{record.partition}", record.offset * ITEMS_PER_RECORD + index


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def funnel_of(app: LeadscoreApp) -> Funnel:
    """The totals, decoded once and then kept (this worker owns the funnel partition)."""
    if FUNNEL_KEY not in app.live.funnel_cache:
        stored = app.store.table_get(app.funnel, FUNNEL_KEY, 0)
        app.live.funnel_cache[FUNNEL_KEY] = (
            Funnel.model_validate_json(stored) if stored else Funnel()
        )
    return cast(Funnel, app.live.funnel_cache[FUNNEL_KEY])


def recent_of(app: LeadscoreApp) -> Recent:
    if RECENT_KEY not in app.live.funnel_cache:
        stored = app.store.table_get(app.funnel, RECENT_KEY, 0)
        app.live.funnel_cache[RECENT_KEY] = (
            Recent.model_validate_json(stored) if stored else Recent()
        )
    return cast(Recent, app.live.funnel_cache[RECENT_KEY])
