"""Input as it really arrives (DESIGN.md): each normalization rule, one test or more."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from scoring import load_rules, snapshot
from scoring.engine import apply_message
from scoring.messages import Batch, Delete, Identify, Rejection, parse_input, parse_message

T = "2026-11-01T09:00:00Z"


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "track", "event": "Demo Requested", "userId": "ada"}
    base |= {"messageId": "m1", "timestamp": T}
    for name, value in fields.items():
        if value is _GONE:
            base.pop(name, None)
        else:
            base[name] = value
    return base


_GONE = object()


def parsed(**fields: Any) -> Any:
    result = parse_message(json.dumps(body(**fields)))
    assert not isinstance(result, Rejection), result.reason
    return result


def rejected(**fields: Any) -> Rejection:
    result = parse_message(json.dumps(body(**fields)))
    assert isinstance(result, Rejection), result
    return result


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# --- Event time --------------------------------------------------------------


def test_timestamp_wins_over_the_other_times() -> None:
    message = parsed(originalTimestamp="2026-10-01T00:00:00Z", sentAt="2026-10-02T00:00:00Z")
    assert message.at == at(T)


def test_segments_skew_correction_when_all_three_times_are_there() -> None:
    # The device clock is 10 minutes fast: sent 2 s after the event by its clock, received
    # at 09:00:05 by Segment's. Event time = receivedAt - (sentAt - originalTimestamp).
    message = parsed(
        timestamp=_GONE,
        originalTimestamp="2026-11-01T09:10:00Z",
        sentAt="2026-11-01T09:10:02Z",
        receivedAt="2026-11-01T09:00:05Z",
    )
    assert message.at == at("2026-11-01T09:00:03+00:00")


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"originalTimestamp": "2026-11-01T08:00:00Z", "sentAt": "2026-11-01T08:00:01Z"}, "08:00"),
        ({"originalTimestamp": "2026-11-01T08:00:00Z", "receivedAt": "2026-11-01T07:00Z"[:0]
          + "2026-11-01T07:00:00Z"}, "08:00"),
        ({"receivedAt": "2026-11-01T07:00:00Z", "sentAt": "2026-11-01T06:00:00Z"}, "07:00"),
        ({"sentAt": "2026-11-01T06:00:00Z"}, "06:00"),
    ],
)  # fmt: skip
def test_the_fallback_chain(times: dict[str, str], expected: str) -> None:
    assert parsed(timestamp=_GONE, **times).at == at(f"2026-11-01T{expected}:00+00:00")


def test_no_event_time_at_all_says_which_fields() -> None:
    reason = rejected(timestamp=_GONE).reason
    assert "timestamp is required" in reason and "originalTimestamp" in reason


def test_a_null_timestamp_falls_back() -> None:
    assert parsed(timestamp=None, sentAt="2026-11-01T06:00:00Z").at == at(
        "2026-11-01T06:00:00+00:00"
    )


def test_a_bad_fallback_time_is_named() -> None:
    assert "originalTimestamp" in rejected(timestamp=_GONE, originalTimestamp="soon").reason
    assert "sentAt" in rejected(timestamp=_GONE, sentAt="2026-02-30T00:00:00Z").reason


@pytest.mark.parametrize("stamp", ["2026-11-01T09:00:00", "2026-11-01T09:00:00.000"])
def test_an_iso_string_with_no_offset_is_utc(stamp: str) -> None:
    assert parsed(timestamp=stamp).at == at(T.replace("Z", "+00:00"))


@pytest.mark.parametrize("epoch", [1793523600, 1793523600.0, 1793523600000, 1793523600000.0])
def test_an_epoch_number_is_seconds_or_milliseconds_above_1e11(epoch: float) -> None:
    assert parsed(timestamp=epoch).at == 1793523600.0


@pytest.mark.parametrize("epoch", [-1, 7258118400, 99_999_999_999, 7258118400000])
def test_an_epoch_number_out_of_range_is_refused_with_what_to_fix(epoch: int) -> None:
    assert "epoch seconds or milliseconds" in rejected(timestamp=epoch).reason


def test_an_impossible_date_is_refused() -> None:
    assert "timestamp" in rejected(timestamp="2026-02-30T09:00:00Z").reason


# --- messageId -----------------------------------------------------------------


@pytest.mark.parametrize("missing", [_GONE, None, "", " \t"])
def test_a_missing_message_id_is_derived_from_the_content(missing: object) -> None:
    first = parsed(messageId=missing)
    assert first.messageId.startswith("content-")
    assert parsed(messageId=missing).messageId == first.messageId  # a resend dedupes
    assert parsed(messageId=missing, event="Email Opened").messageId != first.messageId


def test_a_resent_message_without_id_is_ignored() -> None:
    rules = load_rules()
    message = parsed(messageId=_GONE)
    state, _ = apply_message(None, message, rules)
    again, transitions = apply_message(state, parsed(messageId=_GONE), rules)
    assert again == state and transitions == []


# --- Ids -----------------------------------------------------------------------


def test_numeric_ids_become_strings() -> None:
    message = parse_message(json.dumps(body(userId=12345) | {"type": "group", "groupId": 77}))
    assert not isinstance(message, Rejection), message.reason
    assert message.userId == "12345" and message.groupId == "77"  # type: ignore[union-attr]
    assert parsed(userId=42.0).userId == "42"


def test_fractional_or_huge_numeric_ids_are_refused() -> None:
    assert "whole number" in rejected(userId=1.5).reason
    assert "lost digits" in rejected(userId=1e20).reason


@pytest.mark.parametrize(
    "placeholder", ["", " ", "0", "-1", "null", "NULL", "undefined", "Anonymous", 0, -1]
)
def test_placeholder_ids_count_as_absent(placeholder: object) -> None:
    message = parsed(userId=placeholder, anonymousId="visitor-7")
    assert message.userId is None and message.lead_id == "visitor-7"
    assert "userId or anonymousId" in rejected(userId=placeholder).reason


def test_a_placeholder_group_id_is_refused() -> None:
    result = parse_message(json.dumps(body(type="group", groupId="undefined")))
    assert isinstance(result, Rejection) and "groupId" in result.reason


# --- identify traits -----------------------------------------------------------


def identify(**fields: Any) -> Identify:
    message = parsed(type="identify", event=_GONE, **fields)
    assert isinstance(message, Identify)
    return message


def test_identify_traits_in_context_traits_only_are_read() -> None:
    message = identify(context={"traits": {"email": "ada@acme.example", "title": "CTO"}})
    assert message.traits == {"email": "ada@acme.example", "title": "CTO"}


def test_top_level_traits_win_per_trait_over_context_traits() -> None:
    message = identify(
        traits={"title": "VP Sales"}, context={"traits": {"email": "a@acme.example", "title": "x"}}
    )
    assert message.traits == {"email": "a@acme.example", "title": "VP Sales"}


def test_rudderstack_and_segment_identifies_give_the_same_fit() -> None:
    rules = load_rules()
    traits = {"email": "ada@acme.example", "title": "VP Engineering", "company": {"employees": 900}}
    segment = identify(traits=traits)
    rudder = identify(context={"traits": traits})
    fit = [snapshot(apply_message(None, m, rules)[0], rules).fit_score for m in (segment, rudder)]
    assert fit[0] == fit[1] > 0


def test_context_traits_do_not_become_traits_of_a_track() -> None:
    message = parsed(context={"traits": {"email": "a@acme.example"}})
    assert not hasattr(message, "traits")


# --- Batches ---------------------------------------------------------------------


def test_a_batch_body_is_its_messages_in_order() -> None:
    items = [body(messageId=f"m{i}") for i in range(3)]
    batch = parse_input(json.dumps({"batch": items, "sentAt": T}))
    assert isinstance(batch, Batch)
    assert [m.messageId for m in batch] == ["m0", "m1", "m2"]  # type: ignore[union-attr]


def test_envelope_context_and_integrations_apply_to_items_that_lack_them() -> None:
    envelope = {"context": {"library": {"name": "analytics-python"}}, "integrations": {"All": True}}
    own = {"library": {"name": "own"}}
    batch = parse_input(
        json.dumps({"batch": [body(), body(messageId="m2", context=own)]} | envelope)
    )
    assert isinstance(batch, Batch)
    first, second = batch
    assert first.context == envelope["context"] and second.context == own  # type: ignore[union-attr]


def test_envelope_sent_at_gives_items_without_a_time_theirs() -> None:
    items = [body(timestamp=_GONE, messageId="m1"), body(messageId="m2")]
    batch = parse_input(json.dumps({"batch": items, "sentAt": "2026-11-01T08:00:00Z"}))
    assert isinstance(batch, Batch)
    assert [m.at for m in batch] == [at("2026-11-01T08:00:00+00:00"), at(T)]  # type: ignore[union-attr]


def test_a_bad_item_is_rejected_alone_with_its_index() -> None:
    batch = parse_input(
        json.dumps({"batch": [body(), body(type="launch"), 7, body(messageId="m3")]})
    )
    assert isinstance(batch, Batch)
    kinds = [type(item).__name__ for item in batch]
    assert kinds == ["Track", "Rejection", "Rejection", "Track"]
    assert batch[1].index == 1 and batch[1].reason.startswith("batch item 1: ")  # type: ignore[union-attr]
    assert batch[2].index == 2 and "object" in batch[2].reason  # type: ignore[union-attr]


@pytest.mark.parametrize("items", [[], {}, "x", None])
def test_a_batch_that_is_not_a_list_of_messages_is_refused(items: object) -> None:
    result = parse_input(json.dumps({"batch": items}))
    assert isinstance(result, Rejection) and "batch" in result.reason


def test_a_batch_where_one_message_is_expected_says_so() -> None:
    result = parse_message(json.dumps({"batch": [body()]}))
    assert isinstance(result, Rejection) and "batch body" in result.reason


# --- delete ----------------------------------------------------------------------


def test_a_delete_request_is_read() -> None:
    message = parsed(type="delete", event=_GONE)
    assert isinstance(message, Delete) and message.userId == "ada"


def test_a_delete_needs_a_user_id() -> None:
    result = parse_message(json.dumps(body(type="delete", userId=_GONE, anonymousId="v")))
    assert isinstance(result, Rejection) and "userId" in result.reason


def test_event_times_are_utc_instants() -> None:
    assert parsed(timestamp="2026-11-01T10:00:00+01:00").timestamp == datetime(
        2026, 11, 1, 9, tzinfo=UTC
    )
