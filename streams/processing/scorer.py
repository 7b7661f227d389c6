"""Scoring: decode each record, look up the lead, call the core, store, emit.

The worker's consumer hands the records of the input and repartition topics
to `Scorer.handle` as it fetches them, one after the other
(`streams.kafka.consumer.Intake`): Faust's per-record path (an Event per record,
the stream's queue, the agent's iterator) cost more than the scoring.
Offsets, acks, commits and rebalances stay Faust's. One record at a time
(faust-streaming issue 606: with more, offsets can be committed past a
message still in flight).

With exactly_once, what the scorer sends goes into the worker's transaction
(`streams.kafka.transactions`), and a record is handled only while no commit is
under way: a transaction then holds the outputs of exactly the records whose
state it holds.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from scoring import (
    LeadState,
    Position,
    Rejection,
    Transition,
    advance,
    apply_message,
    bring_to_rules,
    next_crossing,
    sales_alert,
)
from scoring.engine import Output
from scoring.messages import Batch, Delete, Message, parse_input
from scoring.outputs import DeadLetter, FollowUp, LeadDeletion, deletion_id
from scoring.state import Stage, applied_already, new_lead, position_of
from streams.context import (
    CONTROL_HEADER,
    DECAY_CHECK,
    FUNNEL_KEY,
    ITEMS_PER_RECORD,
    ORIGIN_HEADER,
    RULES_CHECK,
    LeadscoreApp,
)
from streams.kafka.topics import partition_for
from streams.kafka.transport import use_intake
from streams.processing.funnel import follow_up_record, gone_lead
from streams.processing.funnel import new_lead as new_lead_record
from streams.processing.stitching import LEAD_HEADER, Stitcher, control_of, forwarded_to

log = logging.getLogger(__name__)


def register(app: LeadscoreApp) -> None:
    scorer = Scorer(app)
    app.faust.topics.add(app.events)  # subscribed; its records go to the intake
    # What the scorer holds back (claims, messages sent on) goes out after each fetch.
    use_intake(app.faust, app.events.topics, app.between_commits_of(scorer.handle),
               after_fetch=app.store.send_held)  # fmt: skip


class Scorer:
    """What happens to each record of the input and repartition topics."""

    def __init__(self, app: LeadscoreApp) -> None:
        self.app = app
        self.rules = app.rules
        self.partitions = app.settings.partitions
        self.metrics = app.live.metrics
        self.store = app.store
        self.stitcher = Stitcher(app, self.save) if app.settings.stitch else None

    async def handle(self, record: Any) -> None:
        """Score one record (a Faust message: topic, partition, offset, key, value, headers)."""
        started = time.perf_counter()
        self.app.live.positions[record.topic, record.partition] = record.offset
        outcome = await self._handle(record)
        self.metrics.handled(outcome, time.perf_counter() - started)

    async def _handle(self, record: Any) -> str:
        headers = record.headers
        check = _check_of(headers) if headers else None
        if check == DECAY_CHECK:
            await self.check_decay(record, float(record.value))
            return "decay_check"
        if check == RULES_CHECK:
            await self.check_rules(record, float(record.value))
            return "rules_check"
        if headers and self.stitcher is not None and (control := control_of(headers)):
            return await self.stitcher.handle(control, record)
        parsed = parse_input(record.value)
        if isinstance(parsed, Batch):
            # A batch body: its messages in order, each where it would be alone; a bad item
            # is dead-lettered (its reason names its index) and the others are applied.
            counts = self.metrics.messages
            for index, item in enumerate(parsed):
                if isinstance(item, Rejection):
                    await self.dead_letter(record, item)
                    counts["rejected"] += 1
                else:
                    counts[await self._message(record, item, index, single=False)] += 1
            return "batch"
        if isinstance(parsed, Rejection):
            await self.dead_letter(record, parsed)
            return "rejected"
        return await self._message(record, parsed, 0, single=True)

    async def _message(self, record: Any, message: Message, index: int, *, single: bool) -> str:
        """One message of `record` (its `index`-th; `single`: the record is this message)."""
        headers = record.headers
        lead_id = forwarded_to(headers) if headers else None  # stitched to another lead
        lead_key = (lead_id or message.lead_id).encode()
        owner = partition_for(lead_key, self.partitions)
        origin = _origin(headers) if headers else None
        if origin is None:
            source = f"{record.topic}:{record.partition}"
            origin = source, record.offset * ITEMS_PER_RECORD + index
        if record.partition != owner:
            # The record's key was not its lead: on to the lead's partition, with where it
            # was read, which tells the lead a re-read forward from a new message.
            self._send_on(lead_key, record, message, single, origin)
            return "repartitioned"
        stitcher = self.stitcher
        state = self.store.get(lead_key, owner)
        fresh = state is None
        # An anonymous id absorbed into another lead (or a lead forwarded to, absorbed
        # since): on to the lead that holds it now.
        anonymous = lead_id is None and message.userId is None
        if stitcher is not None and (anonymous or (lead_id is not None and fresh)):
            holder = stitcher.forward_to(lead_key.decode(), owner, origin)
            if holder == "":  # in the state handed over already
                self.store.delete(lead_key, owner)  # its tombstones again (see _claim)
                return "reread"
            if holder is not None:
                self._send_on(holder.encode(), record, message, single, origin, under=True)
                return "forwarded"
        if lead_id is not None:  # scored under another lead: remembered under its own id
            origin = position_of(origin, message.lead_id, lead_id)
            if fresh:
                state = new_lead(lead_id, identified=True)  # (its holder was deleted since)
        if state is not None and applied_already(state, origin):
            # Applied before a crash or a rebalance, read again since: so its offset was
            # not committed, and the flush that made the state durable may have been cut
            # before its snapshot reached lead-scores. The next flush sends it again.
            self.store.put(lead_key, owner, state)
            return "reread"
        if isinstance(message, Delete):
            await self.forget(lead_key, owner, state, message, record, index)
            return "deleted"
        updated, transitions = apply_message(state, message, self.rules, origin)
        if state is not None and updated.seen == state.seen:
            # A resend (its messageId was applied already): only its position is new.
            self.store.put(lead_key, owner, updated)
            return "duplicate"
        if fresh:  # counted in the funnel (once: by the message's position)
            funnel_record = new_lead_record(record, index)
            await self.app.emit(self.app.funnel_topic, FUNNEL_KEY, funnel_record, partition=0)
        if stitcher is not None and (
            message.type in ("identify", "alias") or (message.userId and message.anonymousId)
        ):  # its claims are held back to the end of the fetch (`LeadStore.hold`)
            updated = stitcher.link(updated, message, origin)
        await self.save(lead_key, owner, updated, transitions, record, index)
        return "applied"

    def _send_on(
        self,
        lead_key: bytes,
        record: Any,
        message: Message,
        single: bool,
        origin: Position,
        *,
        under: bool = False,
    ) -> None:
        """`message` (of `record`, the whole record if `single`) on to the partition of
        `lead_key` in the repartition topic, with where it was first read; `under`: to be
        scored under that lead (the lead holding its anonymous id), not its own. Held
        back with the claims (`LeadStore.hold`), in order with them."""
        headers = [(ORIGIN_HEADER, f"{origin[0]}:{origin[1]}".encode())]
        if under:
            headers.append((LEAD_HEADER, lead_key))
        self.store.hold(
            self.app.repartition,
            partition_for(lead_key, self.partitions),
            lead_key,
            record.value if single else _encoded(message),
            headers,
        )

    async def forget(
        self,
        lead_key: bytes,
        partition: int,
        state: LeadState | None,
        message: Delete,
        record: Any,
        index: int,
    ) -> None:
        """A delete request: the lead's state and recent transitions go (tombstones on its
        table and on lead-scores by the next flush), and a record says so on lead-deletions.

        A lead deleted again (a re-read, a resend) sends the same record, with the same id.
        """
        lead_id = message.userId
        absorbed = list(state.identity.absorbed) if state is not None and state.identity else []
        deletion = LeadDeletion(
            deletion_id=deletion_id(lead_id, message.messageId),
            lead_id=lead_id,
            absorbed_ids=absorbed,
            message_id=message.messageId,
            occurred_at=message.timestamp,
        )
        await self.app.emit(self.app.deletions, lead_key, _json(deletion))
        if state is not None:
            gone = gone_lead(state.stage, record, index)
            await self.app.emit(self.app.funnel_topic, FUNNEL_KEY, gone, partition=0)
            self.store.delete(lead_key, partition)
            self.store.table_put(self.app.recent, lead_key, partition, None)
        if self.stitcher is not None and state is not None:
            self.stitcher.release(state)

    async def check_decay(self, record: Any, until: float) -> None:
        """A decay check (a record of the lead's partition): time passes to `until`."""
        lead_key, partition = record.key, record.partition
        state = self.store.get(lead_key, partition)
        if state is None:  # deleted (or merged) since: nothing to send again
            self.app.live.crossings.set(lead_key, None)
            return
        updated, transitions = advance(state, until, self.rules)
        if transitions:
            await self.save(lead_key, partition, updated, transitions, record)
        else:
            self.app.live.crossings.set(lead_key, next_crossing(state, self.rules))

    async def check_rules(self, record: Any, until: float) -> None:
        """A rules check (`streams.processing.sweep`): the lead, if still scored under
        earlier rules, brought to the rules in use at `until`."""
        lead_key, partition = record.key, record.partition
        state = self.store.get(lead_key, partition)
        if state is None:  # deleted (or merged) since
            return
        updated, outputs = bring_to_rules(state, until, self.rules)
        if updated is not state:  # else brought over already (by a message, or a resend)
            await self.save(lead_key, partition, updated, outputs, record)

    async def save(
        self,
        lead_key: bytes,
        partition: int,
        state: LeadState,
        outputs: list[Output],
        record: Any,
        index: int = 0,
    ) -> None:
        """Transitions and follow-ups out now (each follow-up to the funnel too, by the
        position of its cause: the `index`-th message of `record`); then the new state to
        the store (durable by the next commit).

        In that order: the store's flush first waits for what was sent before it, so a
        state is never durable before the transitions it led to (else a crash between
        the two would lose them: the message, read again, would be a duplicate).
        """
        app, store = self.app, self.store
        transitions = []
        follow_ups = 0
        for output in outputs:
            if isinstance(output, FollowUp):
                self.metrics.follow_ups[output.kind] += 1
                await self.app.emit(app.alerts, lead_key, _json(output))
                funnel_record = follow_up_record(output, record, index, follow_ups)
                await self.app.emit(app.funnel_topic, FUNNEL_KEY, funnel_record, partition=0)
                follow_ups += 1
                continue
            transitions.append(output)
            self.metrics.transitions[output.from_stage, output.to_stage] += 1
            await self.app.emit(app.transitions, lead_key, _json(output))
            if output.to_stage is Stage.SQL:
                await self.app.emit(app.alerts, lead_key, _json(sales_alert(output)))
        store.put(lead_key, partition, state)
        if transitions:
            recent = _newest_first(transitions, store.table_get(app.recent, lead_key, partition))
            store.table_put(app.recent, lead_key, partition, recent)

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
            source_item=rejection.index,
            original_key=record.key,
            original_value=record.value,
            rejected_at=datetime.fromtimestamp(time.time(), UTC),
        )
        await self.app.emit(self.app.dead_letters, record.key, _json(letter))


RECENT_PER_LEAD = 10


def _origin(headers: Any) -> Position | None:
    """Where a repartitioned record was first read ("topic:partition", offset)."""
    for name, value in headers:
        if name == ORIGIN_HEADER:
            source, _, offset = value.decode().rpartition(":")
            return source, int(offset)
    return None


def _check_of(headers: Any) -> bytes | None:
    """DECAY_CHECK or RULES_CHECK, if a record's headers (Kafka's: (name, value) pairs) mark
    it as one."""
    for name, value in headers:
        if name == CONTROL_HEADER and value in (DECAY_CHECK, RULES_CHECK):
            return bytes(value)
    return None


def _newest_first(transitions: list[Transition], stored: bytes | None) -> bytes:
    """The lead's last RECENT_PER_LEAD transitions, newest first, as a JSON list."""
    newest = [t.model_dump(mode="json") for t in reversed(transitions)]
    older = orjson.loads(stored) if stored else []
    return orjson.dumps([*newest, *older][:RECENT_PER_LEAD])


def _encoded(message: Message) -> bytes:
    """A batch item on its own, as `parse_message` reads it back (the same message)."""
    return message.model_dump_json(exclude_unset=True).encode()


def _json(model: Any) -> bytes:
    return model.model_dump_json().encode()  # type: ignore[no-any-return]
