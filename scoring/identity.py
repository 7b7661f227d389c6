"""Identities: one person, one lead.

A visitor is anonymous (an `anonymousId`, a cookie) until a popup signup, a form or a
login says who it is; the history before that belongs to the known lead. The
identifiers are the `userId`, the `email` trait (trimmed, lower-cased) and the
`anonymousId`. A message links the identifiers it carries:

- any message with both a `userId` and an `anonymousId`;
- an `identify` whose traits give an `email`;
- an `alias` (`previousId` is `userId`).

A lead's id is its user id once it has one, else the id it was first seen under.
Linking two leads merges them (`scoring.engine.merge`): the survivor is the lead with a
user id, else the older one (earliest event time, then the smaller id). The safety
rules (what identity resolution systems learned the hard way):

- two user ids never merge;
- an anonymous id or an email belongs to the first lead that claims it (arrival order);
  a later claim from another identified lead is a conflict: the message is scored under
  its own lead, without merging, and counted;
- at most MAX_ANONYMOUS_JOINS anonymous ids join a lead per ANONYMOUS_WINDOW of event
  time, and at most MAX_MERGES leads merge into one; past that, messages still score,
  unmerged (counted as conflicts too).

The message is applied to its own lead first and the link is made after it: the stream
does it in this order (the other lead's state arrives later, from its partition), and
replay must give the same transitions.

`Identities` keeps the links for a replay, in memory. `decide` is the rule both the
replay and the stream use.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from scoring.messages import Alias, Identify, Message
from scoring.state import (
    ANONYMOUS_WINDOW,
    MAX_ANONYMOUS_JOINS,
    MAX_LINKS,
    MAX_MERGES,
    Identity,
    LeadState,
    is_identified,
)

log = logging.getLogger(__name__)

Via = Literal["anonymousId", "email", "alias"]
Conflict = Literal["two_user_ids", "claimed", "anonymous_cap", "merge_cap"]
ANONYMOUS = "anon:"
EMAIL = "email:"


@dataclass(frozen=True, slots=True)
class Link:
    """An identifier a message ties to its lead: `key` is "anon:<id>" or "email:<addr>"."""

    key: str
    via: Via


def links_of(message: Message) -> list[Link]:
    """The identifiers this message ties to its own lead, in a fixed order."""
    found: list[Link] = []
    if isinstance(message, Alias):
        found.append(Link(ANONYMOUS + message.previousId, "alias"))
    elif message.userId is not None and message.anonymousId is not None:
        found.append(Link(ANONYMOUS + message.anonymousId, "anonymousId"))
    if isinstance(message, Identify):
        email = email_of(message)
        if email is not None:
            found.append(Link(EMAIL + email, "email"))
    return found


def email_of(message: Identify) -> str | None:
    value = message.traits.get("email")
    return normal_email(value) if isinstance(value, str) else None


def normal_email(text: str) -> str | None:
    """An email address as identities compare it (trimmed, lower-cased); None if `text`
    is not one."""
    email = text.strip().lower()
    return email if "@" in email else None


@dataclass(frozen=True, slots=True)
class Merge:
    survivor: str
    absorbed: str


Decision = Merge | Conflict | None  # None: nothing to merge (a claim, or the same lead)


def decide(lead: LeadState, owner: LeadState, key: str, at: float) -> Decision:
    """What linking `key` to `lead` does when `owner` (another lead) holds it already."""
    if owner.lead_id == lead.lead_id:
        return None
    if is_identified(lead) and is_identified(owner):
        return "two_user_ids" if key.startswith(ANONYMOUS) and _is_own_id(owner, key) else "claimed"
    if is_identified(owner) or (not is_identified(lead) and _older(owner, lead)):
        survivor, absorbed = owner, lead
    else:
        survivor, absorbed = lead, owner
    if _merges(survivor) + 1 + _merges(absorbed) > MAX_MERGES:
        return "merge_cap"
    if not is_identified(absorbed) and not joins_allowed(survivor, at):
        return "anonymous_cap"  # the absorbed lead's id is an anonymous id, joining
    return Merge(survivor.lead_id, absorbed.lead_id)


def joins_allowed(lead: LeadState, at: float) -> bool:
    """Whether one more anonymous id may join this lead at event time `at`."""
    return room_to_join(lead.identity.joins if lead.identity is not None else (), at)


def room_to_join(joins: tuple[float, ...], at: float) -> bool:
    """Whether one more anonymous id may join at `at` a lead with these joins."""
    return sum(1 for joined in joins if at - ANONYMOUS_WINDOW < joined <= at) < MAX_ANONYMOUS_JOINS


def joined(lead: LeadState, at: float) -> LeadState:
    """The lead with one more anonymous id joined at `at` (older joins out of reach dropped)."""
    identity = lead.identity or Identity()
    joins = join_times(identity.joins, lead.clock, at)
    return replace(lead, identity=replace(identity, joins=joins))


def join_times(joins: tuple[float, ...], clock: float | None, at: float) -> tuple[float, ...]:
    """A lead's joins (at `clock`) with one more at `at`, those out of reach dropped."""
    horizon = max(clock or at, at) - ANONYMOUS_WINDOW
    return tuple(sorted(t for t in (*joins, at) if t > horizon))[-MAX_ANONYMOUS_JOINS:]


def claimed_by(lead: LeadState, key: str, at: float) -> LeadState | None:
    """The lead claiming an identifier nobody holds, at event time `at`: with the join
    counted when it is an anonymous id; None when the cap of anonymous ids binds."""
    if not key.startswith(ANONYMOUS):
        return lead
    return joined(lead, at) if joins_allowed(lead, at) else None


def unjoined(lead: LeadState, at: float) -> LeadState:
    """The lead with the anonymous id it counted as joined at `at` taken back (the stream
    counts a join when it claims the id, and takes it back when the claim is refused)."""
    identity = lead.identity
    if identity is None or at not in identity.joins:
        return lead
    joins = list(identity.joins)
    joins.remove(at)
    return replace(lead, identity=replace(identity, joins=tuple(joins)))


def with_links(lead: LeadState, keys: list[str]) -> LeadState:
    """The lead with `keys` (identifiers its message tied to it) among its links, latest
    last (at most MAX_LINKS); the same lead when it has them all."""
    identity = lead.identity or Identity()
    links = links_with(identity.links, keys)
    if links is identity.links:
        return lead
    return replace(lead, identity=replace(identity, links=links))


def links_with(links: tuple[str, ...], keys: list[str]) -> tuple[str, ...]:
    """`links` with `keys` too, latest last (at most MAX_LINKS); `links` itself when it has
    them all."""
    new = [key for key in keys if key not in links]
    return tuple(dict.fromkeys((*links, *new)))[-MAX_LINKS:] if new else links


def _is_own_id(owner: LeadState, key: str) -> bool:
    return owner.lead_id == key.removeprefix(ANONYMOUS)


def _older(a: LeadState, b: LeadState) -> bool:
    first_a = a.first_at if a.first_at is not None else float("inf")
    first_b = b.first_at if b.first_at is not None else float("inf")
    return (first_a, a.lead_id) < (first_b, b.lead_id)


def _merges(lead: LeadState) -> int:
    return len(lead.identity.absorbed) if lead.identity is not None else 0


@dataclass(slots=True)
class Identities:
    """Which lead holds each identifier, for one replay (all in memory).

    `owners` maps an identifier key to the lead that claimed it; `absorbed` maps a
    merged lead's id to the lead that absorbed it. A lead's own anonymous id is its
    own without an entry.
    """

    owners: dict[str, str] = field(default_factory=dict)
    absorbed: dict[str, str] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)  # lead -> keys it claimed
    conflicts: Counter[Conflict] = field(default_factory=Counter)

    def lead_of(self, message: Message) -> str:
        """The lead a message is scored under."""
        if message.userId is not None:
            return message.userId
        anonymous_id = message.anonymousId
        assert anonymous_id is not None
        return self.resolve(self.owners.get(ANONYMOUS + anonymous_id, anonymous_id))

    def resolve(self, lead_id: str) -> str:
        """The lead that now stands for `lead_id` (itself unless it was absorbed)."""
        absorbed = self.absorbed
        while lead_id in absorbed:
            lead_id = absorbed[lead_id]
        return lead_id

    def owner(self, key: str, states: dict[str, LeadState]) -> str | None:
        """The lead holding an identifier, if any."""
        claimed = self.owners.get(key)
        if claimed is not None:
            return self.resolve(claimed)
        if key.startswith(ANONYMOUS):
            own = key.removeprefix(ANONYMOUS)
            if own in states or own in self.absorbed:
                return self.resolve(own)
        return None

    def holds(self, anonymous_id: str, lead_id: str) -> bool:
        """Whether the lead holds this anonymous id already (claimed it, or absorbed the
        lead of that id): a cheap test for the messages that link nothing new."""
        return (
            self.owners.get(ANONYMOUS + anonymous_id) == lead_id
            or self.absorbed.get(anonymous_id) == lead_id
        )

    def claim(self, key: str, lead_id: str) -> None:
        self.owners[key] = lead_id
        self.keys.setdefault(lead_id, []).append(key)

    def merged(self, absorbed: str, survivor: str) -> None:
        self.absorbed[absorbed] = survivor
        moved = self.keys.pop(absorbed, [])
        if moved:
            self.keys.setdefault(survivor, []).extend(moved)

    def conflict(self, kind: Conflict) -> None:
        self.conflicts[kind] += 1
        log.info("identity conflict (%s): scored without merging", kind)

    def forget(self, lead_id: str, absorbed_ids: tuple[str, ...]) -> Iterator[str]:
        """Drop every link to a deleted lead; yields the keys it held."""
        for key in self.keys.pop(lead_id, []):
            if self.owners.get(key) is not None and self.resolve(self.owners[key]) == lead_id:
                del self.owners[key]
                yield key
        for absorbed_id in absorbed_ids:
            self.absorbed.pop(absorbed_id, None)
