"""Offline replay: score a sequence of JSON lines with the same core as the stream."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scoring.engine import advance, apply_message, snapshot
from scoring.messages import Rejection, parse_message
from scoring.outputs import ScoreSnapshot, Transition
from scoring.rules import Rules
from scoring.state import LeadState


@dataclass(frozen=True, slots=True)
class BadLine:
    line_number: int
    reason: str


@dataclass(slots=True)
class Replay:
    """Folds messages into per-lead states, in arrival order.

    `at` (epoch seconds) is the as-of time: messages with a later timestamp
    are not applied. Without it, the as-of time is the latest timestamp seen.
    States may be carried over from an earlier replay: folding a file in two
    parts equals folding it whole.
    """

    rules: Rules
    at: float | None = None
    states: dict[str, LeadState] = field(default_factory=dict)
    latest: float | None = None
    applied: int = 0
    not_yet: int = 0
    bad: int = 0

    def feed(
        self, lines: Iterable[bytes | str], first_line: int = 1
    ) -> Iterator[Transition | BadLine]:
        """Apply each line; yield the transitions it caused, or a BadLine."""
        states, rules, at = self.states, self.rules, self.at  # the loop runs per message
        latest = self.latest if self.latest is not None else -math.inf
        try:
            for line_number, line in enumerate(lines, start=first_line):
                if not line or line.isspace():
                    continue
                message = parse_message(line)
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
                lead_id = message.lead_id
                state, transitions = apply_message(states.get(lead_id), message, rules)
                states[lead_id] = state
                self.applied += 1
                if transitions:
                    yield from transitions
        finally:
            if latest > -math.inf:
                self.latest = latest

    def as_of(self) -> float | None:
        return self.at if self.at is not None else self.latest

    def finish(self) -> tuple[Iterator[ScoreSnapshot], list[Transition]]:
        """Every lead as of the as-of time (lazily, in order of first appearance), and
        the decay demotions up to it, by time.

        The carried-over states are left as they are: finishing is a view.
        """
        at = self.as_of()
        if at is None:
            return iter(()), []
        demoted: dict[str, LeadState] = {}
        demotions: list[Transition] = []
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
