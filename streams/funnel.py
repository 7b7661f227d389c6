"""Funnel analytics, computed in the stream from `lead-transitions`.

Two steps. `funnel-feed` reads the transitions topic (partitioned by lead),
keeps when each lead entered mql (to time its way to sql), and forwards each
transition to the one-partition funnel topic, where `funnel-totals` folds
them into one aggregate (`scoring.funnel.Funnel`) that GET /funnel reads
(routed to the worker that owns it). New leads, which no transition
announces, are counted by the scoring agent into the same topic.
"""

from __future__ import annotations

import json
from typing import Any

from scoring import Transition
from scoring.funnel import Funnel
from scoring.state import Stage
from streams.app import FUNNEL_KEY, LeadscoreApp


def register(app: LeadscoreApp) -> None:
    @app.faust.agent(app.transitions_in, name="funnel-feed", concurrency=1)
    async def funnel_feed(stream: Any) -> None:
        async for event in stream.events():
            transition = Transition.model_validate_json(event.value)
            lead_key = event.message.key
            hours_to_sql = None
            if transition.to_stage is Stage.MQL:
                app.mql_since[lead_key] = repr(transition.occurred_at.timestamp()).encode()
            elif transition.from_stage is Stage.MQL:
                entered = app.mql_since.pop(lead_key, None)
                if entered is not None and transition.to_stage is Stage.SQL:
                    hours = (transition.occurred_at.timestamp() - float(entered)) / 3600
                    hours_to_sql = max(0.0, hours)
            record = {"transition": json.loads(event.value), "hours_to_sql": hours_to_sql}
            await app.funnel_topic.send(key=FUNNEL_KEY, value=json.dumps(record).encode())

    @app.faust.agent(app.funnel_topic, name="funnel-totals", concurrency=1)
    async def funnel_totals(stream: Any) -> None:
        async for event in stream.events():
            stored = app.funnel.get(FUNNEL_KEY)
            funnel = Funnel.model_validate_json(stored) if stored else Funnel()
            record = json.loads(event.value)
            if "new_leads" in record:
                funnel.add_new_leads(int(record["new_leads"]))
            else:
                transition = Transition.model_validate(record["transition"])
                funnel.add(transition, record["hours_to_sql"])
            app.funnel[FUNNEL_KEY] = funnel.model_dump_json().encode()
