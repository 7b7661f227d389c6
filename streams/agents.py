"""The scoring agent: decode, look up the lead, call the core, store, emit.

Concurrency is one actor (faust-streaming issue 606: with more, offsets can
be committed past a message still in flight).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from scoring import (
    LeadState,
    Rejection,
    Transition,
    advance,
    apply_message,
    next_crossing,
    parse_message,
    sales_alert,
)
from scoring.outputs import DeadLetter
from scoring.state import Stage
from streams.app import CONTROL_HEADER, DECAY_CHECK, LeadscoreApp
from streams.topics import partition_for

log = logging.getLogger(__name__)


def register(app: LeadscoreApp) -> None:
    scorer = Scorer(app)

    @app.faust.agent(app.events, name="score", concurrency=1)
    async def score(stream: Any) -> None:
        # Values, with the event beside them: `stream.events()` is one more
        # async generator hop per message.
        async for _ in stream:
            await scorer.handle(stream.current_event)


class Scorer:
    """What the agent does with each record of the input and repartition topics."""

    def __init__(self, app: LeadscoreApp) -> None:
        self.app = app
        self.rules = app.rules
        self.partitions = app.settings.partitions
        self.metrics = app.metrics
        self.store = app.store

    async def handle(self, event: Any) -> None:
        started = time.perf_counter()
        record = event.message
        self.app.positions[record.topic, record.partition] = record.offset
        outcome = await self._handle(event, record)
        self.metrics.handled(outcome, time.perf_counter() - started)

    async def _handle(self, event: Any, record: Any) -> str:
        if event.headers.get(CONTROL_HEADER) == DECAY_CHECK:
            await self.check_decay(record.key, record.partition, float(event.value))
            return "decay_check"
        message = parse_message(event.value)
        if isinstance(message, Rejection):
            await self.dead_letter(record, message)
            return "rejected"
        lead_key = message.lead_id.encode()
        owner = partition_for(lead_key, self.partitions)
        if record.partition != owner:
            # The record's key was not its lead: on to the lead's partition.
            await self.app.repartition.send(key=lead_key, value=event.value, partition=owner)
            return "repartitioned"
        state = self.store.get(lead_key)
        updated, transitions = apply_message(state, message, self.rules)
        if updated is state:
            return "duplicate"
        if state is None:
            self.app.new_leads += 1
        await self.save(lead_key, owner, updated, transitions)
        return "applied"

    async def check_decay(self, lead_key: bytes, partition: int, until: float) -> None:
        state = self.store.get(lead_key)
        if state is None:
            return
        updated, transitions = advance(state, until, self.rules)
        if transitions:
            await self.save(lead_key, partition, updated, transitions)
        else:
            self.app.crossings.set(lead_key, next_crossing(state, self.rules))

    async def save(
        self, lead_key: bytes, partition: int, state: LeadState, transitions: list[Transition]
    ) -> None:
        """Transitions out now; then the new state to the store (durable by the next commit).

        In that order: the store's flush first waits for what was sent before it, so a
        state is never durable before the transitions it led to (else a crash between
        the two would lose them: the message, read again, would be a duplicate).
        """
        app = self.app
        for transition in transitions:
            self.metrics.transitions[transition.from_stage, transition.to_stage] += 1
            await app.transitions.send(key=lead_key, value=_json(transition))
            if transition.to_stage is Stage.SQL:
                await app.alerts.send(key=lead_key, value=_json(sales_alert(transition)))
        self.store.put(lead_key, partition, state)
        if transitions:
            recent = _newest_first(transitions, self.store.table_get(app.recent, lead_key))
            self.store.table_put(app.recent, lead_key, partition, recent)

    async def dead_letter(self, record: Any, rejection: Rejection) -> None:
        # Topic, partition and offset only: the record may hold personal data.
        log.warning(
            "rejected record %s[%s]@%s: %s",
            record.topic,
            record.partition,
            record.offset,
            rejection.kind,
        )
        self.metrics.rejected[rejection.kind] += 1
        letter = DeadLetter(
            reason=rejection.reason,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            original_key=record.key,
            original_value=record.value,
            rejected_at=datetime.fromtimestamp(time.time(), UTC),
        )
        await self.app.dead_letters.send(key=record.key, value=_json(letter))


RECENT_PER_LEAD = 10


def _newest_first(transitions: list[Transition], stored: bytes | None) -> bytes:
    """The lead's last RECENT_PER_LEAD transitions, newest first, as a JSON list."""
    newest = [t.model_dump(mode="json") for t in reversed(transitions)]
    older = orjson.loads(stored) if stored else []
    return orjson.dumps([*newest, *older][:RECENT_PER_LEAD])


def _json(model: Any) -> bytes:
    return model.model_dump_json().encode()  # type: ignore[no-any-return]
