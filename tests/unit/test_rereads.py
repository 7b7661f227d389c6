"""Re-reads after a crash: a message read again at its position is not applied again.

The stream makes a lead's state durable ahead of its consumed offsets and,
after a crash or a rebalance, reads again from the committed offsets. These
tests fold messages as the stream does (each with its source and position),
"crash" at a point where the durable state is ahead of the committed offset,
and read again: the result must be the uninterrupted fold.
"""

from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from scoring import (
    LeadState,
    Rejection,
    Transition,
    apply_message,
    decode_state,
    encode_state,
    parse_message,
)
from scoring.state import DEDUPE_WINDOW, Position
from tests.unit.test_properties import RULES, START, sequences


def fold(
    states: dict[str, LeadState], read: list[tuple[str, Position | None]]
) -> tuple[dict[str, LeadState], list[Transition]]:
    states = dict(states)
    transitions: list[Transition] = []
    for line, position in read:
        message = parse_message(line)
        assert not isinstance(message, Rejection)
        lead = message.lead_id
        states[lead], caused = apply_message(states.get(lead), message, RULES, position)
        transitions.extend(caused)
    return states, transitions


def positioned(lines: list[str], sources: list[int]) -> list[tuple[str, Position | None]]:
    """Each line read from its source ("in:N"), at the next position of that source."""
    next_offset: dict[str, int] = {}
    read = []
    for line, source_number in zip(lines, sources, strict=True):
        source = f"in:{source_number}"
        offset = next_offset.get(source, 0)
        next_offset[source] = offset + 1
        read.append((line, (source, offset)))
    return read


def durable(states: dict[str, LeadState]) -> dict[str, LeadState]:
    return {lead: decode_state(encode_state(state)) for lead, state in states.items()}


@given(sequences, st.data())
def test_reading_again_from_any_earlier_offset_changes_nothing(
    lines: list[str], data: st.DataObject
) -> None:
    sources = data.draw(st.lists(st.integers(0, 2), min_size=len(lines), max_size=len(lines)))
    read = positioned(lines, sources)
    whole, expected = fold({}, read)

    crash = data.draw(st.integers(0, len(read)))  # the state is durable up to here
    committed = data.draw(st.integers(0, crash))  # the offsets only up to here
    before, sent_before = fold({}, read[:crash])
    after, sent_after = fold(durable(before), read[committed:])

    assert after == whole
    # What was sent before the crash, and what the re-read sends, is every transition once.
    assert sent_before + sent_after == expected


def test_a_lead_with_more_messages_than_the_dedupe_window_is_not_applied_twice() -> None:
    """Today's defect, in the core: 100 email opens of one lead, durable after all of them,
    read again from the first. The dedupe window holds 64 ids; positions hold them all."""
    lines = [
        json.dumps({"type": "track", "event": "Demo Requested" if n % 10 == 0 else "Email Opened",
                    "messageId": f"m{n}", "userId": "ada",
                    "timestamp": (START + timedelta(hours=n)).isoformat()})
        for n in range(DEDUPE_WINDOW + 36)
    ]  # fmt: skip
    read = positioned(lines, [0] * len(lines))
    whole, _ = fold({}, read)
    again, sent_again = fold(durable(whole), read)
    assert again == whole and sent_again == []

    # Without positions (dedupe by messageId alone) the oldest 36 would count twice.
    doubled, _ = fold(durable(whole), [(line, None) for line, _ in read])
    assert doubled["ada"].engagement != whole["ada"].engagement


def test_a_resend_is_remembered_at_its_position() -> None:
    """An upstream resend (same messageId, new position) changes nothing, and reading it
    again after the window moved on still changes nothing."""
    first = json.dumps({"type": "track", "event": "Demo Requested", "messageId": "m0",
                        "userId": "ada", "timestamp": START.isoformat()})  # fmt: skip
    opens = [
        json.dumps({"type": "track", "event": "Email Opened", "messageId": f"o{n}",
                    "userId": "ada", "timestamp": (START + timedelta(minutes=n)).isoformat()})
        for n in range(DEDUPE_WINDOW)
    ]  # fmt: skip
    read: list[tuple[str, Position | None]] = [(first, ("in:0", 0)), (first, ("in:1", 0))]
    read += [(line, ("in:0", n + 1)) for n, line in enumerate(opens)]
    whole, _ = fold({}, read)
    assert whole["ada"].applied == {"in:0": DEDUPE_WINDOW, "in:1": 0}
    again, sent = fold(durable(whole), read[1:2])
    assert again == whole and sent == []
