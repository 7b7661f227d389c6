"""Input: parsing and validation (DESIGN.md, "Input: Segment-spec messages").

The rules, messages and hand arithmetic are in tests/unit/semantics.py."""

from __future__ import annotations

import json

import pytest

import scoring
from scoring import Rejection, Stage
from tests.unit.semantics import (
    LEAD,
    RULES,
    T0,
    apply_all,
    demo,
    epoch,
    group,
    identify,
    message,
    page,
    parse,
    qualification,
    track,
)

# ==========================================================================
# Input: parsing and validation
# ==========================================================================


def test_valid_messages_of_every_known_type_are_accepted() -> None:
    raws = [
        track("m1", "Something No Rule Knows"),
        page("m2", "/blog/post"),
        message("screen", "m3", 0.0, LEAD, name="Dashboard", properties={}),
        identify("m4", {"title": "CTO"}),
        group("m5", {"employee_count": 10}),
        message("alias", "m6", 0.0, LEAD, previousId="anon-1"),
    ]
    for raw in raws:
        parsed = scoring.parse_message(raw)
        assert not isinstance(parsed, Rejection), (raw, parsed)
        assert parsed.lead_id == LEAD
        assert parsed.timestamp == T0 and parsed.timestamp.utcoffset() is not None
    # Valid messages that no rule matches change nothing.
    state, transitions = apply_all(raws)
    assert transitions == [] and state.stage == Stage.LEAD


def _without(field: str) -> str:
    body = json.loads(demo("m1"))
    del body[field]
    return json.dumps(body)


INVALID_INPUTS = {
    "not JSON": ("{this is not json", ("json", "invalid", "parse")),
    "not an object (array)": ('[{"type": "track"}]', ("object", "dict", "mapping")),
    "not an object (number)": ("42", ("object", "dict", "mapping")),
    "missing timestamp": (_without("timestamp"), ("timestamp",)),
    "timestamp as epoch number out of range": (
        demo("m1").replace('"2026-11-01T09:00:00+00:00"', "-5"),
        ("timestamp", "epoch"),
    ),
    "timestamp not a date": (
        demo("m1").replace("2026-11-01T09:00:00+00:00", "yesterday"),
        ("timestamp",),
    ),
    "unknown type": (message("launch", "m1", 0.0, LEAD), ("type",)),
    "missing type": (_without("type"), ("type",)),
    "missing userId and anonymousId": (track("m1", "Demo Requested", user=None), ("id",)),
    "Qualification Updated with an unknown framework": (
        qualification("m1", {"budget": True}, framework="MEDDIC"),
        ("framework",),
    ),
    "Qualification Updated with non-boolean criteria": (
        qualification("m1", {"budget": "yes"}),
        ("budget", "criteria"),
    ),
}


@pytest.mark.parametrize(
    ("raw", "words"), list(INVALID_INPUTS.values()), ids=list(INVALID_INPUTS.keys())
)
def test_invalid_input_is_rejected_with_a_clear_reason(raw: str, words: tuple[str, ...]) -> None:
    parsed = scoring.parse_message(raw)
    assert isinstance(parsed, Rejection), parsed
    assert parsed.reason.strip()
    assert any(word in parsed.reason.lower() for word in words), parsed.reason


def test_invalid_bytes_are_rejected_not_raised() -> None:
    parsed = scoring.parse_message(b"\xff\xfe not utf-8 json")
    assert isinstance(parsed, Rejection) and parsed.reason.strip()


def test_anonymous_id_is_accepted_as_the_lead_id() -> None:
    raw = track("anon-m1", "Demo Requested", user=None, anonymousId="visitor-42")
    parsed = parse(raw)
    assert parsed.lead_id == "visitor-42"
    state, transitions = scoring.apply_message(None, parsed, RULES)
    assert transitions == []
    assert scoring.snapshot(state, RULES).engagement_score == 40.0
    assert scoring.snapshot(state, RULES).lead_id == "visitor-42"


def test_null_user_id_with_anonymous_id_is_accepted() -> None:
    # Segment sends "userId": null for visitors not yet known.
    parsed = parse(track("m1", "Demo Requested", user=None, userId=None, anonymousId="v-7"))
    assert parsed.lead_id == "v-7"


def test_empty_user_id_without_anonymous_id_is_rejected() -> None:
    parsed = scoring.parse_message(track("m1", "Demo Requested", user=""))
    assert isinstance(parsed, Rejection), parsed


def test_timestamp_with_z_designator_is_accepted() -> None:
    raw = demo("m1").replace("2026-11-01T09:00:00+00:00", "2026-11-01T09:00:00Z")
    assert parse(raw).timestamp.timestamp() == epoch(0.0)


def test_user_id_wins_over_anonymous_id() -> None:
    parsed = parse(track("m1", "Demo Requested", anonymousId="visitor-42"))
    assert parsed.lead_id == LEAD


def test_timestamp_with_non_utc_offset_is_the_same_instant() -> None:
    raw = demo("m1").replace("2026-11-01T09:00:00+00:00", "2026-11-01T10:30:00+01:30")
    assert parse(raw).timestamp.timestamp() == epoch(0.0)
