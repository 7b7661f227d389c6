"""Funnel analytics, computed in the stream from `lead-transitions`.

Two steps. `funnel-feed` reads the transitions topic (partitioned by lead),
keeps when each lead entered mql (to time its way to sql), and forwards each
transition to the one-partition funnel topic, where `funnel-totals` folds
them into one aggregate (`scoring.funnel.Funnel`) that GET /funnel reads
(routed to the worker that owns it). Their table writes wait in
`streams.store` until the next commit. New leads, which no transition
announces, are counted by the scorer and sent to the same topic once a
second: a crash can lose up to a second of that count.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, cast

from pydantic import BaseModel

from scoring import Transition
from scoring.funnel import Funnel, Recent
from scoring.state import Stage
from streams.app import FUNNEL_KEY, RECENT_KEY, LeadscoreApp

NEW_LEADS_INTERVAL = 1.0


def register(app: LeadscoreApp) -> None:
    store = app.store

    @app.faust.agent(app.transitions_in, name="funnel-feed", concurrency=1)
    async def funnel_feed(stream: Any) -> None:
        async for event in stream.events():
            transition = Transition.model_validate_json(event.value)
            lead_key = event.message.key
            hours_to_sql = None
            partition = event.message.partition
            if transition.to_stage is Stage.MQL:
                entered_at = repr(transition.occurred_at.timestamp()).encode()
                store.table_put(app.mql_since, lead_key, partition, entered_at)
            elif transition.from_stage is Stage.MQL:
                entered = store.table_get(app.mql_since, lead_key, partition)
                store.table_put(app.mql_since, lead_key, partition, None)
                if entered is not None and transition.to_stage is Stage.SQL:
                    hours = (transition.occurred_at.timestamp() - float(entered)) / 3600
                    hours_to_sql = max(0.0, hours)
            record = {"transition": json.loads(event.value), "hours_to_sql": hours_to_sql}
            await app.funnel_topic.send(key=FUNNEL_KEY, value=json.dumps(record).encode())

    @app.faust.agent(app.funnel_topic, name="funnel-totals", concurrency=1)
    async def funnel_totals(stream: Any) -> None:
        async for event in stream.events():
            record = json.loads(event.value)
            funnel = funnel_of(app)
            if "new_leads" in record:
                funnel.add_new_leads(int(record["new_leads"]))
            else:
                transition = Transition.model_validate(record["transition"])
                funnel.add(transition, record["hours_to_sql"])
                recent = recent_of(app)
                recent.add(transition)
                store.table_put(app.funnel, RECENT_KEY, 0, partial(_json, recent))
            # Encoded at the next flush, once however many transitions came by.
            store.table_put(app.funnel, FUNNEL_KEY, 0, partial(_json, funnel))

    @app.faust.timer(interval=NEW_LEADS_INTERVAL)
    async def count_new_leads() -> None:
        """New leads, a batch a second: a message per new lead would be most of the traffic."""
        count, app.new_leads = app.new_leads, 0
        if count:
            producer = app.faust.producer
            await producer.maybe_start()
            topic = app.funnel_topic.get_topic_name()
            await producer.send(topic, FUNNEL_KEY, b'{"new_leads": %d}' % count, 0, None, None)

    @app.funnel.on_recover
    async def forget_totals() -> None:
        app.funnel_cache.clear()


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def funnel_of(app: LeadscoreApp) -> Funnel:
    """The totals, decoded once and then kept (this worker owns the funnel partition)."""
    if FUNNEL_KEY not in app.funnel_cache:
        stored = app.store.table_get(app.funnel, FUNNEL_KEY, 0)
        app.funnel_cache[FUNNEL_KEY] = Funnel.model_validate_json(stored) if stored else Funnel()
    return cast(Funnel, app.funnel_cache[FUNNEL_KEY])


def recent_of(app: LeadscoreApp) -> Recent:
    if RECENT_KEY not in app.funnel_cache:
        stored = app.store.table_get(app.funnel, RECENT_KEY, 0)
        app.funnel_cache[RECENT_KEY] = Recent.model_validate_json(stored) if stored else Recent()
    return cast(Recent, app.funnel_cache[RECENT_KEY])
