"""Identity stitching in the stream: the anonymous visitor who signs up is the same lead.

A message that carries a user id and an anonymous id (an identify after a popup
signup, every message of a logged-in browser) or an `alias` ties the anonymous id to
the known lead, as in replay (`scoring.identity`). The two leads usually live on
different partitions: the known lead U on the partition of its user id, the
anonymous lead A on the partition of its cookie id. The identities table is
co-partitioned with A: its key `anon:<A>` lives on A's partition, next to A's state,
so whoever decides a claim on A sees A's state, and decides it in one step.

1. U's partition applies the message, then sends a claim for A through the
   repartition topic to A's partition, with U's state as it is then (what the
   decision needs: who U is, its merges, its anonymous joins), and counts A's join
   at once (under the cap of anonymous ids per window, checked there as in replay).
2. A's partition decides, as `scoring.identity.decide` does in replay:
   - nobody holds A and no lead A exists: U holds A now (`anon:A -> U`), and nothing
     needs to go back;
   - lead A exists: it is handed over, its whole state in one record to U's
     partition, deleted here (tombstones on its table and on `lead-scores`, and it
     leaves the funnel), and `anon:A -> U`;
   - another identified lead holds A, or a cap binds: an identity conflict, scored
     without merging, counted (`leadscore_identity_conflicts{kind}`), and U's
     partition is told to take the join back.
3. U's partition merges the hand-over (`scoring.engine.merge`: as if U had received
   both leads' messages) and sends the merge to `lead-merges`.
4. Later messages of A, read on A's partition, find `anon:A -> U` and are forwarded
   to U's partition, with the lead to score them under in a header.

Every step is handled on one partition, and its effects are made durable with its
record's offset (at least once: sent before the state is, so a crash sends them
again; exactly once: in the transaction). What a step sends through the repartition
topic is held back to the end of the fetch (`LeadStore.hold`), and the claims sent one
after another to a partition go as one record (claims are most control records).
A step done twice changes nothing: a claim decided before finds its claimant holding
A; a hand-over or a join read again is skipped by its position in the survivor's
state, a hand-over of a lead absorbed already by the survivor's list of absorbed ids;
records of A forwarded twice are re-reads by their first position. So a SIGKILL at
any point loses no history and counts none twice, and no lead is left half-merged: A's
state is either still on its partition or on its way to U in a durable record.

A claim by email goes to the email's partition, and on to the partition of the lead
holding it, where it is decided beside that lead's state; when that lead survives (an
older anonymous lead, an identified one), the claimant is told to move and hands itself
over. A deleted lead lets go of the cookies it absorbed and of the identifiers its
messages tied to it (a release to each).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from scoring import LeadState, Position, decode_state, encode_state
from scoring.engine import Output, merge
from scoring.identity import (
    ANONYMOUS,
    Conflict,
    Merge,
    decide,
    join_times,
    joined,
    joins_allowed,
    links_of,
    links_with,
    room_to_join,
    unjoined,
)
from scoring.messages import Message
from scoring.outputs import LeadMerge, merge_id
from scoring.state import IDENTIFIED, Identity, applied_already, is_identified, named_in
from streams.context import CONTROL_HEADER, FUNNEL_KEY, ITEMS_PER_RECORD, LeadscoreApp
from streams.kafka.topics import partition_for
from streams.processing.funnel import gone_lead

if TYPE_CHECKING:
    from collections.abc import Awaitable

log = logging.getLogger(__name__)

CLAIM = b"claim"  # one claim a record (as an earlier version sent them)
CLAIMS = b"claims"  # claims to one partition, [[to, claim], ...] (see `_send`)
HANDOVER = b"handover"
JOIN = b"join"
MOVE = b"move"
RELEASE = b"release"
UNJOIN = b"unjoin"
CONTROLS = (CLAIM, CLAIMS, HANDOVER, JOIN, MOVE, RELEASE, UNJOIN)
# A claim is a few hundred bytes, at most about 5 KB (a claimant of 100 merges): a
# record of claims stays well under Kafka's default limit of 1 MB.
CLAIMS_PER_RECORD = 100
MERGED = ("via", "message_id", "at", "occurred_at")  # of a claim, what its merge names
REPLIED = (*MERGED, "after", "joined")  # of a claim, what a reply to it carries
# On a forwarded message: the lead it is scored under (not the one its ids name).
LEAD_HEADER = "leadscore-lead"
HOLDER = ANONYMOUS.encode()  # identities table keys: b"anon:" + anonymous id
CLAIMED_CACHE = 100_000
# A hand-over or join sent round again this often finds a claimant that was deleted.
MAX_DEFERRALS = 10_000  # (lead, anonymous id) pairs claimed, so each is claimed once


class Saver(Protocol):
    def __call__(
        self, lead_key: bytes, partition: int, state: LeadState, outputs: list[Output], record: Any
    ) -> Awaitable[None]: ...


class Stitcher:
    """The scorer's part in stitching: claims out, and the three control records in."""

    def __init__(self, app: LeadscoreApp, save: Saver) -> None:
        self.app = app
        self.save = save
        self.partitions = app.settings.partitions
        # Claims sent by this worker: a browser sends its anonymous id with every message,
        # and one claim per lead and id is enough (one more after a restart: idempotent).
        self._claimed: OrderedDict[tuple[str, str], None] = OrderedDict()

    def holder(self, anonymous_id: str, partition: int) -> str | None:
        """The lead that holds an anonymous id, if not the anonymous lead itself; read on
        the anonymous id's partition."""
        held = self._held(ANONYMOUS + anonymous_id, partition)
        return None if held is None else held[0]

    def forward_to(self, anonymous_id: str, partition: int, origin: Position) -> str | None:
        """Where a message of an anonymous id read at `origin` goes: the lead holding the
        id (None: it is its own lead's), or "" when the id's lead was handed over with
        that message applied already (a re-read after a crash: sent on, it could reach
        the survivor before the hand-over, and be counted twice)."""
        value = self.app.store.table_get(
            self.app.identities, (ANONYMOUS + anonymous_id).encode(), partition
        )
        if value is None:
            return None
        held = orjson.loads(value)
        handed = held.get("applied", {}).get(origin[0])
        return "" if handed is not None and origin[1] <= handed else str(held["lead_id"])

    def link(self, state: LeadState, message: Message, origin: Position) -> LeadState:
        """After `message` (read at `origin`) was applied to its lead (`state`): a claim
        for each identifier it ties to the lead that the lead has not claimed yet. The
        lead, with those identifiers among its links (let go of when it is deleted), and
        with a join counted for each anonymous id it claims, as replay counts it (taken
        back if the claim is refused)."""
        identity = state.identity
        if identity is not None and message.type not in ("identify", "alias"):
            anonymous_id = message.anonymousId  # the common case: a browser linked before
            if anonymous_id in identity.absorbed or ANONYMOUS + str(anonymous_id) in identity.links:
                return state
        identity = identity or Identity()
        # The lead changes once, at the end: its joins (each claim's claimant has those
        # counted before it) and its links.
        joins, at = identity.joins, message.at
        tied = []
        for found in links_of(message):
            key = found.key
            ident = key.partition(":")[2]
            if ident == state.lead_id or ident in identity.absorbed:
                continue
            pair = (state.lead_id, key)
            if key in identity.links or pair in self._claimed:  # claimed before (durably)
                tied.append(key)
                continue
            anonymous = key.startswith(ANONYMOUS)
            if anonymous and not room_to_join(joins, at):
                self._conflict("anonymous_cap")  # tried again with its next message
                continue
            tied.append(key)
            self._claimed[pair] = None
            if len(self._claimed) > CLAIMED_CACHE:
                self._claimed.popitem(last=False)
            claim = {
                "key": key,
                "claimant": _who(state, joins),  # before this claim's join
                "via": found.via,
                "message_id": message.messageId,
                "at": at,
                "occurred_at": message.timestamp.isoformat(),
                "after": list(origin),  # the reply waits for the claimant to be this far
            }
            if anonymous:  # its join counted at once, as in replay
                claim["joined"] = True
                joins = join_times(joins, state.clock, at)
            self._send(key, CLAIM, claim)
        links = links_with(identity.links, tied)
        if joins is identity.joins and links is identity.links:
            return state
        return replace(state, identity=replace(identity, joins=joins, links=links))

    def release(self, state: LeadState) -> None:
        """A deleted lead lets go of the cookies it absorbed and of the identifiers its
        messages (and those of the leads it absorbed) tied to it: their later messages
        score under their own ids again, and an email is anyone's to claim, as in replay.
        Each is let go of only if the lead (or one it absorbed) holds it."""
        identity = state.identity
        if identity is None:
            return
        keys = dict.fromkeys((*(ANONYMOUS + i for i in identity.absorbed), *identity.links))
        owners = {"lead_ids": [state.lead_id, *identity.absorbed]}
        for key in keys:
            self._send(key, RELEASE, owners)

    async def handle(self, kind: bytes, record: Any) -> str:
        """A control record of the repartition topic: a claim, or a reply to one."""
        payload = orjson.loads(record.value)
        if kind == CLAIMS:  # each claim's outcome counted as a record's would be
            counts = self.app.live.metrics.messages
            for index, (to, claim) in enumerate(payload):
                counts[await self._claim(to, record.partition, claim, record, index)] += 1
            return "claims"
        if kind == CLAIM:
            return await self._claim(record.key.decode(), record.partition, payload, record, 0)
        if kind == RELEASE:  # on the identifier's partition
            key, partition = record.key, record.partition
            held = self._held(key.decode(), partition)
            if held is None or held[0] not in payload["lead_ids"]:
                return "reread"  # let go of already, or someone else's
            self.app.store.table_put(self.app.identities, key, partition, None)
            return "released"
        position = (f"{record.topic}:{record.partition}", record.offset * ITEMS_PER_RECORD)
        lead_key, partition = record.key, record.partition
        store = self.app.store
        state = store.get(lead_key, partition)
        holder = self.holder(lead_key.decode(), partition) if state is None else None
        if holder is not None:  # the lead was absorbed into another since
            if kind in (HANDOVER, UNJOIN):  # on to it: the history, or the join it took over
                self._send(holder, kind, payload)
                return "forwarded"
            self._conflict("claimed")  # its links are that lead's to make
            return "conflict"
        after = payload.get("after")
        if state is None or (after is not None and not applied_already(state, tuple(after))):
            # Here before the message that made the claim: it is read again after a crash
            # (its input partition and this one are read in any order). Once more, after it.
            deferrals = payload.get("deferrals", 0) + 1
            if deferrals > MAX_DEFERRALS:  # the claimant was deleted since: forgotten too
                log.warning("a %s for a lead gone since was dropped", kind.decode())
                return "dropped"
            again = orjson.dumps({**payload, "deferrals": deferrals})
            store.hold(self.app.repartition, partition, lead_key, again, [(CONTROL_HEADER, kind)])
            return "deferred"
        if applied_already(state, position):
            return "reread"
        if kind == JOIN:  # (a claim sent before the claimant counted its own joins)
            store.put(lead_key, partition, _at(joined(state, payload["at"]), position))
            return "joined"
        if kind == UNJOIN:
            store.put(lead_key, partition, _at(unjoined(state, payload["at"]), position))
            return "unjoined"
        if kind == MOVE:  # this lead goes to the survivor
            survivor = payload["survivor"]
            await self._hand_over(state, survivor, payload["identified"], payload, record)
            return "handed_over"
        absorbed = decode_state(payload["absorbed"])
        merged, outputs = merge(state, absorbed, self.app.rules, payload["message_id"])
        if merged is state:  # handed over before (a resend): nothing changes
            store.put(lead_key, partition, _at(state, position))
            return "reread"
        if not is_identified(absorbed) and not payload.get("joined"):
            merged = joined(merged, payload["at"])  # (unless counted with its claim)
        event = LeadMerge(
            merge_id=merge_id(absorbed.lead_id, state.lead_id, payload["message_id"]),
            merged_id=absorbed.lead_id,
            survivor_id=state.lead_id,
            via=payload["via"],
            message_id=payload["message_id"],
            occurred_at=datetime.fromisoformat(payload["occurred_at"]),
        )
        await self.app.emit(self.app.merges, lead_key, event.model_dump_json().encode())
        self.app.live.metrics.merges += 1
        await self.save(lead_key, partition, _at(merged, position), outputs, record)
        return "merged"

    async def _claim(
        self, to: str, partition: int, claim: dict[str, Any], record: Any, index: int
    ) -> str:
        """On the partition of the claimed identifier (or of the lead holding it, `to` then
        naming it): who gets it (see the module's docstring). The `index`-th claim of
        `record`."""
        kind, _, ident = to.partition(":")
        who, at = claim["claimant"], claim["at"]  # (a LeadState only where decided)
        store = self.app.store
        if kind == "lead":  # forwarded to the lead holding the identifier
            state = store.get(ident.encode(), partition)
            if state is not None:
                return await self._decide(state, claim, record, index)
            held = self._held(ANONYMOUS + ident, partition)
            if held is None:
                return "gone"  # deleted since
            self._send("lead:" + held[0], CLAIM, claim)  # absorbed since: onwards
            return "forwarded"
        key = claim["key"]
        if kind == "anon":
            state = store.get(ident.encode(), partition)
            if state is not None:
                # The anonymous lead of that id, here. (Also when the claimant holds the
                # id already: a crash in the middle of a flush can have made the holder
                # durable and not the lead's tombstone; the hand-over is then sent again,
                # and the survivor, which has it, ignores it.)
                return await self._decide(state, claim, record, index)
        held = self._held(key, partition)
        if held is not None and held[0] == who["lead_id"]:  # decided before: sent again
            if kind == "anon":
                # The lead's tombstones again: a crash in the middle of the hand-over's
                # flush can have made its table's durable and not that on lead-scores.
                store.delete(ident.encode(), partition)
            return "reread"
        if held is None:  # nobody holds it (yet): the claimant does now
            if kind == "anon" and not claim.get("joined"):  # a claim of an earlier version
                if not joins_allowed(_claimant(who), at):
                    self._conflict("anonymous_cap")
                    return "conflict"
                self._send(who["lead_id"], JOIN, {"at": at, "after": claim["after"]})
            self._hold(key, who["lead_id"], who["identified"], partition)
            return "claimed"
        holder, identified = held
        if identified and who["identified"]:  # decided without another hop
            holding = LeadState(lead_id=holder, identity=IDENTIFIED)
            decision = decide(_claimant(who), holding, key, at)
            self._refuse(claim, "claimed" if isinstance(decision, Merge) else decision)
            return "conflict"
        self._send("lead:" + holder, CLAIM, claim)  # decided where the holder is
        return "forwarded"

    async def _decide(
        self, state: LeadState, claim: dict[str, Any], record: Any, index: int
    ) -> str:
        """A claim decided where the lead holding the identifier (`state`) is."""
        claimant = _claimant(claim["claimant"])
        decision = decide(claimant, state, claim["key"], claim["at"])
        if decision is None:
            return "reread"
        if not isinstance(decision, Merge):
            self._refuse(claim, decision)
            return "conflict"
        reply = {key: claim[key] for key in REPLIED if key in claim}
        if decision.survivor == claimant.lead_id:
            identified = is_identified(claimant)
            await self._hand_over(state, claimant.lead_id, identified, reply, record, index)
            return "handed_over"
        # This lead survives: the claimant is to come here (from its own partition).
        move = {**reply, "survivor": state.lead_id, "identified": is_identified(state)}
        self._send(claimant.lead_id, MOVE, move)
        return "moving"

    async def _hand_over(
        self,
        state: LeadState,
        survivor: str,
        identified: bool,
        reply: dict[str, Any],
        record: Any,
        index: int = 0,
    ) -> None:
        """This (anonymous) lead's whole state to the survivor; it is gone here (by the
        `index`-th claim of `record`, or by `record`), and its messages are forwarded from
        now on."""
        app, store = self.app, self.app.store
        lead_key = state.lead_id.encode()
        partition = partition_for(lead_key, self.partitions)
        handover = {key: reply[key] for key in (*MERGED, "joined") if key in reply}
        if reply.get("survivor") is None:  # the claimant survives: after its message
            handover["after"] = reply["after"]
        self._send(survivor, HANDOVER, {**handover, "absorbed": _text(state)})
        gone = gone_lead(state.stage, record, index)
        await app.emit(app.funnel_topic, FUNNEL_KEY, gone, partition=0)
        store.delete(lead_key, partition)
        store.table_put(app.recent, lead_key, partition, None)
        # With the positions the lead had applied: a re-read of its messages is not sent on.
        applied = {source: at for source, at in state.applied.items() if named_in(source) is None}
        value = orjson.dumps({"lead_id": survivor, "identified": identified, "applied": applied})
        store.table_put(app.identities, HOLDER + lead_key, partition, value)

    def _held(self, key: str, partition: int) -> tuple[str, bool] | None:
        """Who holds an identifier (`anon:<id>`, `email:<address>`), read on its partition."""
        value = self.app.store.table_get(self.app.identities, key.encode(), partition)
        if value is None:
            return None
        held = orjson.loads(value)
        return str(held["lead_id"]), bool(held["identified"])

    def _hold(self, key: str, lead_id: str, identified: bool, partition: int) -> None:
        value = orjson.dumps({"lead_id": lead_id, "identified": identified})
        self.app.store.table_put(self.app.identities, key.encode(), partition, value)

    def _refuse(self, claim: dict[str, Any], kind: Conflict | None) -> None:
        """A claim refused (an identity conflict): the join its claimant counted with it,
        if any, is taken back."""
        self._conflict(kind)
        if kind is not None and claim.get("joined"):
            unjoin = {"at": claim["at"], "after": claim["after"]}
            self._send(claim["claimant"]["lead_id"], UNJOIN, unjoin)

    def _conflict(self, kind: Conflict | None) -> None:
        if kind is None:
            return
        self.app.live.metrics.identity_conflicts[kind] += 1
        log.info("identity conflict (%s): scored without merging", kind)

    def _send(self, key: str, kind: bytes, payload: dict[str, Any]) -> None:
        """A control record to the partition of `key`: a lead's id for a reply; for a
        claim or a release, `anon:<id>`, `email:<address>` or `lead:<id>`, on the
        partition of what follows the prefix.

        Held back to the end of the fetch (`LeadStore.hold`), and claims (most control
        records) go in batches: the claims sent one after the other to a partition are
        one record, `[[key, claim], ...]`. What reaches each partition comes in the
        order it was sent, as if each were a record of its own."""
        target = key.partition(":")[2] if kind in (CLAIM, RELEASE) else key
        partition = partition_for(target.encode(), self.partitions)
        store, topic = self.app.store, self.app.repartition
        if kind == CLAIM:
            headers = [(CONTROL_HEADER, CLAIMS)]
            store.hold_item(topic, partition, CLAIMS, headers, [key, payload], CLAIMS_PER_RECORD)
        else:
            headers = [(CONTROL_HEADER, kind)]
            store.hold(topic, partition, key.encode(), orjson.dumps(payload), headers)


def control_of(headers: Any) -> bytes | None:
    """The stitching control kind of a record (its headers: Kafka's (name, value) pairs)."""
    for name, value in headers:
        if name == CONTROL_HEADER and value in CONTROLS:
            return bytes(value)
    return None


def forwarded_to(headers: Any) -> str | None:
    """The lead a forwarded message is scored under, from its headers."""
    for name, value in headers:
        if name == LEAD_HEADER:
            return bytes(value).decode()
    return None


def _at(state: LeadState, position: tuple[str, int]) -> LeadState:
    """`state` having applied the control record read at `position`."""
    return replace(state, applied={**state.applied, position[0]: position[1]})


def _who(state: LeadState, joins: tuple[float, ...]) -> dict[str, Any]:
    """What a claim's decision needs of its claimant (`scoring.identity.decide`): who it
    is, when it began, what it absorbed, its anonymous joins (`joins`)."""
    identity = state.identity or Identity()
    return {
        "lead_id": state.lead_id,
        "first_at": state.first_at,
        "identified": identity.identified,
        "absorbed": identity.absorbed,
        "joins": joins,
    }


def _claimant(who: dict[str, Any]) -> LeadState:
    identity = Identity(who["identified"], tuple(who["absorbed"]), tuple(who["joins"]))
    return LeadState(lead_id=who["lead_id"], first_at=who["first_at"], identity=identity)


def _text(state: LeadState) -> str:
    return encode_state(state).decode()
