"""Per-lead state stays small and bounded, whatever the lead's history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from scoring import apply_message, decode_state, encode_state, load_rules, parse_message
from scoring.state import DEDUPE_WINDOW


def test_state_size_does_not_grow_with_the_number_of_messages() -> None:
    rules = load_rules()
    events = ["Email Opened", "Email Link Clicked", "Form Submitted", "Trial Started"]
    state, sizes = None, []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5_000):
        message = parse_message(
            json.dumps(
                {
                    "type": "page" if i % 3 == 0 else "track",
                    "event": events[i % len(events)],
                    "properties": {"path": "/pricing" if i % 2 else "/blog/x"},
                    "messageId": f"message-{i:06d}",
                    "userId": "lead-1",
                    "timestamp": (start + timedelta(hours=3 * i)).isoformat(),
                }
            )
        )
        state, _ = apply_message(state, message, rules)  # type: ignore[arg-type]
        sizes.append(len(encode_state(state)))
    assert max(sizes[1_000:]) <= max(sizes[:1_000])
    assert max(sizes) < 2_000
    assert state is not None
    assert len(state.seen) == DEDUPE_WINDOW * 8
    assert decode_state(encode_state(state)) == state
