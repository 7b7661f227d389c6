"""The state the core keeps per lead: small and bounded whatever the lead's history.

- Engagement is one decayed accumulator per rule (points as of the lead's
  clock), never a list of events.
- Limits keep the counted firing times of a rule that can still matter:
  those within two windows of the lead's clock, at most `LIMIT_HISTORY x
  count`. A firing whose window reaches back past what is kept (one more
  than a window late, or older than an evicted firing) is not counted: a
  limit is never exceeded, and it is exact for messages in order or up to a
  window late.
- Dedupe keeps an 8-byte digest of each of the lead's last
  `DEDUPE_WINDOW` message ids: a resend among them is ignored.
- Re-reads are told apart from resends by position: per source the lead's
  messages came from (the stream names a Kafka topic partition), the
  position of the last one applied. A message at or before it was applied
  already, however long ago. One entry per source, so bounded by the number
  of input partitions; and one per source of each lead absorbed (`position_of`:
  bounded by MAX_MERGES).
- Identity (see scoring.identity): whether the lead's id is a user id, the ids it
  absorbed (at most MAX_MERGES), and the event times of the anonymous ids that joined
  it within ANONYMOUS_WINDOW (at most MAX_ANONYMOUS_JOINS), the identifiers its messages
  tied to it (at most MAX_LINKS; the stream's, to let go of them on a delete). For
  merges by event time,
  the time of each trait's and each framework's last write.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter

DEDUPE_WINDOW = 64
LIMIT_HISTORY = 4
MAX_MERGES = 100
MAX_ANONYMOUS_JOINS = 5
MAX_LINKS = 20
ANONYMOUS_WINDOW = 30 * 86_400.0
_DIGEST = 8


Disqualifier = Literal["rules", "sales"] | None


class Stage(StrEnum):
    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    DISQUALIFIED = "disqualified"


@dataclass(frozen=True, slots=True)
class LeadState:
    """Everything the core knows about one lead. Frozen: the engine returns a new one.

    A slotted dataclass rather than a pydantic model: the engine builds one per
    message, and this is the cheapest frozen record Python has. pydantic still
    validates it whenever it is read back (`decode_state`).
    """

    __pydantic_config__ = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    lead_id: str
    stage: Stage = Stage.LEAD
    # Latest event time applied, in epoch seconds; it never goes back.
    clock: float | None = None
    # identify traits, with group traits under "company".
    traits: dict[str, Any] = field(default_factory=dict)
    # Fit rules matching the traits (rule id -> points), the disqualifiers matching,
    # and the fingerprint of the rules they were computed with.
    fit: dict[str, float] = field(default_factory=dict)
    disqualifiers: tuple[str, ...] = ()
    fit_fingerprint: str = ""
    disqualified_by: Disqualifier = None
    # Per framework, per criterion: met or not (latest update wins).
    criteria: dict[str, dict[str, bool]] = field(default_factory=dict)
    # Per engagement rule: its points decayed to `clock`.
    engagement: dict[str, float] = field(default_factory=dict)
    # Per limited engagement rule: counted firing times still in reach, ascending.
    firings: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # Per limited rule whose history was cut by the cap: the latest firing dropped.
    limit_horizons: dict[str, float] = field(default_factory=dict)
    # Digests of the last DEDUPE_WINDOW message ids, oldest first.
    seen: bytes = b""
    # Per source of messages: the position of the last message applied from it.
    applied: dict[str, int] = field(default_factory=dict)
    # Event time of each trait's last write ("company.<name>" for company traits), and
    # of each framework's last criteria update: a merge keeps the newer value.
    trait_times: dict[str, float] = field(default_factory=dict)
    criteria_times: dict[str, float] = field(default_factory=dict)
    # Earliest event time applied: of two leads without a user id, the older survives.
    first_at: float | None = None
    # Identity: None for a lead that never merged and whose id is not a user id.
    identity: Identity | None = None
    # The sales follow-up of the lead's qualification to sql: None when no rep is due.
    sla: Sla | None = None
    # Per engagement rule in `engagement`: the points per firing its total was counted
    # at (the rules' points then); a later points-only change of the rule re-weights
    # the total exactly (`scoring.engine`). Missing: the rules' current points.
    engagement_points: dict[str, float] = field(default_factory=dict)

    @property
    def fit_score(self) -> float:
        return sum(self.fit.values())


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a lead is, beyond its id."""

    # Whether the lead's id is a user id (else an anonymous id).
    identified: bool = False
    # The ids of the leads merged into this one, oldest first (at most MAX_MERGES).
    absorbed: tuple[str, ...] = ()
    # Event times of the anonymous ids that joined it, within ANONYMOUS_WINDOW of its clock.
    joins: tuple[float, ...] = ()
    # The identifiers ("anon:<id>", "email:<address>") its messages tied to it, latest
    # last (at most MAX_LINKS): the stream lets go of them when the lead is deleted.
    links: tuple[str, ...] = ()


IDENTIFIED = Identity(identified=True)


@dataclass(frozen=True, slots=True)
class Sla:
    """An SQL waiting for a rep: since when, which handoff, and how far it has got
    (0: within the SLA, 1: breached, 2: escalated). The instants follow from the rules
    (`Rules.sla_instants`)."""

    qualified_at: float
    transition_id: str
    level: int = 0


# Where a message was read: its source (e.g. "lead-events:3") and its position in it,
# which grows with every message of the source.
Position = tuple[str, int]

_STATE = TypeAdapter(LeadState)


def new_lead(lead_id: str, identified: bool = False) -> LeadState:
    return LeadState(lead_id=lead_id, identity=IDENTIFIED if identified else None)


def is_identified(state: LeadState) -> bool:
    return state.identity is not None and state.identity.identified


def message_digest(message_id: str) -> bytes:
    return hashlib.blake2b(message_id.encode(), digest_size=_DIGEST).digest()


def has_seen(seen: bytes, digest: bytes) -> bool:
    position = seen.find(digest)
    while position != -1:
        if position % _DIGEST == 0:
            return True
        position = seen.find(digest, position + 1)
    return False


def position_of(position: Position, named: str, lead_id: str) -> Position:
    """Where lead `lead_id` remembers a message read at `position` that names lead `named`:
    under its source, or, for a message of a lead absorbed since (forwarded here), under
    that lead's id and the source. Two leads' messages from one source went to two
    partitions before their merge, and after a crash can arrive in another order than
    they were read: one lead's position must not make the other's message look applied."""
    return position if named == lead_id else (f"{named}|{position[0]}", position[1])


def named_in(source: str) -> str | None:
    """The lead a source of `LeadState.applied` names (`position_of`), None for the lead's
    own. Split at the last bar: a lead id may hold one (`auth0|5f3c...`), a topic not."""
    named, bar, _ = source.rpartition("|")
    return named if bar else None


def applied_already(state: LeadState, position: Position) -> bool:
    """Whether the message read at `position` was applied to this lead before."""
    source, offset = position
    last = state.applied.get(source)
    return last is not None and offset <= last


def remember(seen: bytes, digest: bytes) -> bytes:
    """The dedupe window with one more digest, the oldest dropped past DEDUPE_WINDOW."""
    return (seen + digest)[-DEDUPE_WINDOW * _DIGEST :]


def encode_state(state: LeadState) -> bytes:
    """Compact JSON for the stream's table; defaults are left out."""
    return _STATE.dump_json(state, exclude_defaults=True)


def decode_state(data: bytes | str) -> LeadState:
    """A state read back from storage, validated."""
    return _STATE.validate_json(data)
