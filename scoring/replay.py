"""Offline replay: score a sequence of JSON lines with the same core as the stream."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scoring.engine import advance, apply_message, merge, snapshot
from scoring.identity import (
    Identities,
    Link,
    Merge,
    claimed_by,
    decide,
    joined,
    links_of,
)
from scoring.messages import Batch, Delete, Message, Rejection, parse_input
from scoring.outputs import (
    FollowUp,
    LeadDeletion,
    LeadMerge,
    ScoreSnapshot,
    Transition,
    deletion_id,
    merge_id,
)
from scoring.rules import Rules
from scoring.state import LeadState, is_identified

Output = Transition | FollowUp | LeadMerge | LeadDeletion
_LINKING = ("identify", "alias")


@dataclass(frozen=True, slots=True)
class BadLine:
    line_number: int
    reason: str


@dataclass(slots=True)
class Replay:
    """Folds messages into per-lead states, in arrival order, one lead per person.

    `at` (epoch seconds) is the as-of time: messages with a later timestamp
    are not applied. Without it, the as-of time is the latest timestamp seen.
    States may be carried over from an earlier replay: folding a file in two
    parts equals folding it whole. With `stitch` false, every message scores
    under its own `userId` (else `anonymousId`) and nothing merges: what the
    stream worker does until it stitches identities too.
    """

    rules: Rules
    at: float | None = None
    stitch: bool = True
    states: dict[str, LeadState] = field(default_factory=dict)
    identities: Identities = field(default_factory=Identities)
    latest: float | None = None
    applied: int = 0
    not_yet: int = 0
    bad: int = 0
    merges: int = 0
    deletions: int = 0

    def feed(self, lines: Iterable[bytes | str], first_line: int = 1) -> Iterator[Output | BadLine]:
        """Apply each line (a message, or a batch body of them); yield what it caused:
        transitions, merges and deletions in order, or a BadLine per bad message."""
        for item in self.messages(lines, first_line):
            if isinstance(item, BadLine):
                yield item
            else:
                yield from self.apply(item)

    def messages(
        self, lines: Iterable[bytes | str], first_line: int = 1
    ) -> Iterator[Message | BadLine]:
        """Each line's messages to apply (those up to the as-of time), or a BadLine per bad
        message; counted in `applied`, `not_yet` and `bad` as they go."""
        at = self.at
        latest = self.latest if self.latest is not None else -math.inf
        try:
            for line_number, line in enumerate(lines, start=first_line):
                if not line or line.isspace():
                    continue
                parsed = parse_input(line)
                for message in parsed if isinstance(parsed, Batch) else (parsed,):
                    if isinstance(message, Rejection):
                        self.bad += 1
                        yield BadLine(line_number, message.reason)
                        continue
                    moment = message.at
                    if at is not None and moment > at:
                        self.not_yet += 1
                        continue
                    if moment > latest:
                        latest = moment
                    self.applied += 1
                    yield message
        finally:
            if latest > -math.inf:
                self.latest = latest

    def apply(self, message: Message) -> Iterator[Output]:
        """One message: scored under its lead, then the links it makes."""
        if isinstance(message, Delete):
            yield self._delete(message)
            return
        states, identities = self.states, self.identities
        lead_id = identities.lead_of(message)
        state = states.get(lead_id)
        if state is None:
            lead_id = message.lead_id
        state, transitions = apply_message(state, message, self.rules)
        states[lead_id] = state
        if transitions:
            yield from transitions
        if not self.stitch:
            return
        if message.type not in _LINKING:
            anonymous_id = message.anonymousId
            if anonymous_id is None or message.userId is None:
                return  # nothing to link: the common case, kept short
            if identities.holds(anonymous_id, lead_id):
                return  # linked before: the browser's every message after its identify
        for link in links_of(message):
            yield from self._link(identities.resolve(lead_id), link, message)

    def _link(self, lead_id: str, link: Link, message: Message) -> Iterator[Output]:
        states, identities = self.states, self.identities
        lead = states[lead_id]
        at = message.at
        owner_id = identities.owner(link.key, states)
        if owner_id is None or owner_id not in states:
            claimant = claimed_by(lead, link.key, at)
            if claimant is None:
                identities.conflict("anonymous_cap")
            else:
                identities.claim(link.key, lead_id)
                states[lead_id] = claimant
            return
        decision = decide(lead, states[owner_id], link.key, at)
        if decision is None:
            return
        if not isinstance(decision, Merge):
            identities.conflict(decision)
            return
        survivor, absorbed = states[decision.survivor], states.pop(decision.absorbed)
        merged, transitions = merge(survivor, absorbed, self.rules, message.messageId)
        if not is_identified(absorbed):
            merged = joined(merged, at)
        states[decision.survivor] = merged
        identities.merged(decision.absorbed, decision.survivor)
        self.merges += 1
        yield LeadMerge(
            merge_id=merge_id(decision.absorbed, decision.survivor, message.messageId),
            merged_id=decision.absorbed,
            survivor_id=decision.survivor,
            via=link.via,
            message_id=message.messageId,
            occurred_at=message.timestamp,
        )
        yield from transitions

    def _delete(self, message: Delete) -> LeadDeletion:
        lead_id = self.identities.resolve(message.userId)
        state = self.states.pop(lead_id, None)
        absorbed = state.identity.absorbed if state is not None and state.identity else ()
        for _ in self.identities.forget(lead_id, absorbed):
            pass
        self.deletions += 1
        return LeadDeletion(
            deletion_id=deletion_id(lead_id, message.messageId),
            lead_id=lead_id,
            absorbed_ids=list(absorbed),
            message_id=message.messageId,
            occurred_at=message.timestamp,
        )

    def as_of(self) -> float | None:
        return self.at if self.at is not None else self.latest

    def finish(self) -> tuple[Iterator[ScoreSnapshot], list[Transition | FollowUp]]:
        """Every lead as of the as-of time (lazily, in order of first appearance), and
        what time alone caused up to it (decay demotions, SLA breaches and escalations),
        by time.

        The carried-over states are left as they are: finishing is a view.
        """
        at = self.as_of()
        if at is None:
            return iter(()), []
        demoted: dict[str, LeadState] = {}
        demotions: list[Transition | FollowUp] = []
        for lead_id, state in self.states.items():
            current, transitions = advance(state, at, self.rules)
            if transitions:
                demoted[lead_id] = current
                demotions.extend(transitions)
        demotions.sort(key=lambda t: (t.occurred_at, t.lead_id))
        snapshots = (
            snapshot(demoted.get(lead_id, state), self.rules, at)
            for lead_id, state in self.states.items()
        )
        return snapshots, demotions
