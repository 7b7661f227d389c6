"""Fuzzed input: `parse_message` never raises, never accepts what the shipped JSON
Schema rejects, and what it accepts the core can score and store.

The oracle is `schemas/message.schema.json` applied to the input as RFC 8259 reads
it: UTF-8, no NaN or Infinity, a leading byte order mark ignored (8.1 allows it),
duplicate names resolved the way both Python's json and the parser do (last wins),
and `format: date-time` asserted as RFC 3339 (jsonschema checks it only with an
optional package, so it is written out here from the RFC's grammar).
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from scoring import (
    Rejection,
    advance,
    apply_message,
    decode_state,
    encode_state,
    load_rules,
    next_crossing,
    parse_message,
    snapshot_json,
)
from scoring.messages import RejectionKind

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "message.schema.json").read_text())
RULES = load_rules()
KINDS = set(get_args(RejectionKind))
LONGEST_REASON = 1_000  # a reason goes into logs and dead letters: a line, never the input

# RFC 3339 section 5.6, with its note that "T" and "Z" may be lower case.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))"
)
FORMATS = FormatChecker()


@FORMATS.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # format applies to strings only; `type` says the rest
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    offset_hour, offset_minute = match.group(9), match.group(10)
    if offset_hour is not None and (int(offset_hour) > 23 or int(offset_minute) > 59):
        return False
    try:
        datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return False
    return hour <= 23 and minute <= 59 and second <= 60  # 60: a leap second


VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FORMATS)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def decode(raw: bytes | str) -> Any:
    """The JSON text as RFC 8259 reads it; ValueError if it is not one."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    # Decimal: json's int() refuses more than 4,300 digits, and those are JSON too.
    return json.loads(text.removeprefix("\ufeff"), parse_constant=_not_json, parse_int=_integer)


def _integer(digits: str) -> int | Decimal:
    # jsonschema takes an int for an "integer", not a Decimal: ids may be whole numbers.
    return int(digits) if len(digits) < 4_000 else Decimal(digits)


def schema_accepts(raw: bytes | str) -> bool:
    try:
        instance = decode(raw)
    except ValueError:
        return False
    return VALIDATOR.is_valid(instance)


def check(raw: bytes | str) -> None:
    """The contract for any input: no exception; a rejection is a short line with a
    kind; an acceptance is schema-valid and scores, stores and decays without raising."""
    parsed = parse_message(raw)
    if isinstance(parsed, Rejection):
        assert_good_reason(parsed)
        return
    assert schema_accepts(raw), f"accepted what the schema rejects: {raw[:300]!r}"
    state, _ = apply_message(None, parsed, RULES)
    assert decode_state(encode_state(state)) == state, "the state does not survive its encoding"
    snapshot_json(state, RULES)
    crossing = next_crossing(state, RULES)
    if crossing is not None:
        advance(state, crossing + 1.0, RULES)


def assert_good_reason(rejection: Rejection) -> None:
    reason = rejection.reason
    assert reason.strip(), rejection
    assert len(reason.splitlines()) == 1, f"not one line: {reason[:300]!r}"
    assert len(reason) <= LONGEST_REASON, f"{len(reason)} characters: {reason[:300]!r}"
    assert rejection.kind in KINDS


def rejected(raw: bytes | str) -> Rejection:
    parsed = parse_message(raw)
    assert isinstance(parsed, Rejection), f"accepted: {str(raw)[:300]}"
    assert_good_reason(parsed)
    return parsed


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

T0 = "2026-11-01T09:00:00Z"
IDS = {"messageId": "m1", "timestamp": T0, "userId": "ada", "anonymousId": "visitor-1"}
CONTEXT = {"campaign": {"name": "q4-launch"}, "ip": "192.0.2.1"}
VALID = {
    "track": {"type": "track", **IDS, "event": "Demo Requested",
              "properties": {"path": "/pricing"}, "context": CONTEXT},
    "qualification": {"type": "track", **IDS, "event": "Qualification Updated",
                      "properties": {"framework": "BANT",
                                     "criteria": {"budget": True, "need": False}}},
    "rejection": {"type": "track", **IDS, "event": "Lead Rejected",
                  "properties": {"reason": "no budget"}},
    "page": {"type": "page", **IDS, "name": "Pricing",
             "properties": {"path": "/pricing", "url": "https://www.example.com/pricing"}},
    "screen": {"type": "screen", **IDS, "name": "Dashboard", "properties": {}},
    "identify": {"type": "identify", **IDS,
                 "traits": {"email": "ada@acme.example", "title": "VP Engineering",
                            "company": {"employees": 120}}, "context": CONTEXT},
    "group": {"type": "group", **IDS, "groupId": "g1", "traits": {"employees": 120}},
    "alias": {"type": "alias", **IDS, "previousId": "visitor-1"},
}  # fmt: skip
VALID_RAW = [json.dumps(body).encode() for body in VALID.values()]
FIELDS = (
    "type", "messageId", "timestamp", "userId", "anonymousId", "event", "properties",
    "traits", "name", "groupId", "previousId", "context", "properties.framework",
    "properties.criteria", "properties.criteria.budget", "properties.revenue", "traits.company",
    "traits.company.employees", "context.campaign", "sentAt",
)  # fmt: skip

# Values that break a field, or almost: placeholders, near-timestamps, near-types.
TRICKY = [
    "", " ", "0", "-1", "null", "undefined", "anonymous", "NaN", "Infinity", "track", "TRACK",
    " track", "Qualification Updated", "MEDDIC", "bant", "yes",
    "2026-11-01", "2026-11-01T09:00:00", "2026-11-01 09:00:00Z", "2026-11-01T09:00Z",
    "2026-11-01T09:00:00+0100", "2026-11-01T09:00:00+01", "2026-11-01T09:00:00,5Z",
    "2026-11-01t09:00:00z", "2026-11-01_09:00:00Z", "2026-02-30T09:00:00Z",
    "2026-11-01T24:00:00Z", "2026-12-31T23:59:60Z", "2026-11-01T09:00:00+24:00",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
    "1793523600", "1793523600.5", "1793523600000", "yesterday",
    "2026-11-01T09:00:00.123456789012Z", "\u0661\u0669\u0667\u0660-01-01T00:00:00Z",
    0, -1, 1, 1793523600, 1793523600000, 1.5, -0.0, 10**30, 10**400, True, False,
    [], {}, [None], {"": None}, {"framework": "BANT"}, {"budget": "true"},
]  # fmt: skip

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
)  # floats include NaN and ±Infinity, which json.dumps writes as literals
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=16,
)
wrong_values = st.sampled_from(TRICKY) | json_values
_DELETE = object()


def mutated(body: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    for path, value in changes:
        *parents, last = path.split(".")
        target: Any = body
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value is _DELETE:
            target.pop(last, None)
        else:
            target[last] = copy.deepcopy(value)  # the same value twice would nest in itself
    return body


# NaN and ±Infinity (json.dumps writes them as literals) deep in what has no schema.
non_finite_somewhere = st.tuples(
    st.sampled_from(["properties.revenue", "traits.company.employees", "context.campaign",
                     "traits.scores", "extra"]),
    st.sampled_from([math.nan, math.inf, -math.inf]).flatmap(
        lambda number: st.sampled_from([number, [1, number], {"a": {"b": number}}])
    ),
)  # fmt: skip
messages_with_wrong_fields = st.builds(
    mutated,
    st.sampled_from(list(VALID.values())),
    st.lists(
        st.tuples(st.sampled_from(FIELDS), st.just(_DELETE) | wrong_values) | non_finite_somewhere,
        min_size=1,
        max_size=3,
    ),
)


def encoded(body: Any, as_text: bool) -> bytes | str:
    text = json.dumps(body, allow_nan=True)
    return text if as_text else text.encode()


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------


def test_the_valid_messages_the_fuzzing_starts_from_are_accepted() -> None:
    for raw in VALID_RAW:
        assert not isinstance(parse_message(raw), Rejection), raw
        assert schema_accepts(raw)
        check(raw)


@settings(max_examples=300)
@given(json_values, st.booleans())
def test_any_json_value(value: Any, as_text: bool) -> None:
    check(encoded(value, as_text))


@settings(max_examples=500)
@given(messages_with_wrong_fields, st.booleans())
@example(mutated(VALID["track"], [("timestamp", "1793523600")]), False)
@example(mutated(VALID["identify"], [("traits.company", {"employees": 1e400})]), False)
@example(mutated(VALID["track"], [("timestamp", "9999-12-31T23:59:59Z")]), False)
@example(mutated(VALID["track"], [("type", "x" * 10_000)]), False)
def test_messages_with_fields_of_the_wrong_type(body: dict[str, Any], as_text: bool) -> None:
    check(encoded(body, as_text))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=200)
@given(
    st.sampled_from(VALID_RAW),
    st.integers(min_value=0),
    st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc0\x80", b"\xc3", b"\xe2\x82",
                     b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80"]),
)  # fmt: skip
def test_invalid_utf8_anywhere_is_rejected(valid: bytes, where: int, bad: bytes) -> None:
    at = where % (len(valid) + 1)
    rejected(valid[:at] + bad + valid[at:])


@settings(max_examples=300)
@given(st.sampled_from(VALID_RAW), st.integers(min_value=0), st.booleans())
def test_every_truncation_of_a_message_is_rejected(valid: bytes, where: int, as_text: bool) -> None:
    prefix = valid[: where % len(valid)]
    rejected(prefix.decode() if as_text else prefix)


bodies_and_their_fields = st.sampled_from(list(VALID.values())).flatmap(
    lambda body: st.tuples(st.just(body), st.sampled_from(sorted(body)))
)


@settings(max_examples=300)
@given(bodies_and_their_fields, wrong_values)
def test_duplicate_keys_mean_what_the_last_one_says(
    body_and_field: tuple[dict[str, Any], str], wrong: Any
) -> None:
    body, field = body_and_field
    good = json.dumps(body)
    try:
        # NaN and numbers a double cannot hold make the whole text unreadable, wherever
        # they are (test_numbers_a_double_cannot_hold_are_rejected): not a duplicate case.
        duplicate = json.dumps({field: wrong}, allow_nan=False)[1:-1]
        json.dumps(json.loads(duplicate.join("{}"), parse_int=float), allow_nan=False)
    except (ValueError, OverflowError):
        assume(False)
    before, after = "{" + duplicate + ", " + good[1:], good[:-1] + ", " + duplicate + "}"
    check(before)
    check(after)
    # Whichever the outcome, it is the one of the message without the earlier copy.
    assert type(parse_message(before)) is type(parse_message(good)), before
    overwritten = json.dumps(mutated(body, [(field, wrong)]))
    assert type(parse_message(after)) is type(parse_message(overwritten)), after


def test_duplicate_keys_the_last_wins() -> None:
    raw = json.dumps(VALID["track"])[:-1] + ', "userId": "grace"}'
    parsed = parse_message(raw)
    assert not isinstance(parsed, Rejection) and parsed.lead_id == "grace"


def mostly(
    valid: st.SearchStrategy[int], anything: st.SearchStrategy[int]
) -> st.SearchStrategy[int]:
    """Valid most of the time, so that a stamp is often wrong in one part only."""
    return st.one_of(valid, valid, valid, anything)


@settings(max_examples=500)
@given(
    mostly(st.integers(1970, 2199), st.integers(0, 9999)),
    mostly(st.integers(1, 12), st.integers(0, 99)),
    mostly(st.integers(1, 28), st.integers(0, 99)), st.sampled_from("TTt _"),
    mostly(st.integers(0, 23), st.integers(0, 99)), mostly(st.integers(0, 59), st.integers(0, 99)),
    mostly(st.integers(0, 59), st.integers(0, 99)),
    st.sampled_from(["", "", ".5", ".123456789", ",5", "."]),
    st.sampled_from(["Z", "Z", "z", "", "+00:00", "-00:00", "+01:30", "-23:59", "+24:00",
                     "+0100", "+01", "+01:60", " Z"]),
)  # fmt: skip
def test_a_timestamp_is_accepted_exactly_when_it_is_rfc3339_or_naive_and_possible(
    year: int, month: int, day: int, sep: str, hour: int, minute: int, second: int,
    fraction: str, offset: str,
) -> None:  # fmt: skip
    stamp = f"{year:04}-{month:02}-{day:02}{sep}{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
    raw = json.dumps(VALID["track"] | {"timestamp": stamp})
    check(raw)
    # Event times from 1970 through 2199; no leap seconds (Python's datetime has none).
    # An ISO date-time with no offset is UTC (how real pipelines send it, at times).
    readable = _is_rfc3339(stamp) or (offset == "" and _is_rfc3339(stamp + "Z"))
    possible = readable and 1970 <= year <= 2199 and second <= 59
    assert isinstance(parse_message(raw), Rejection) is not possible, stamp


# --------------------------------------------------------------------------
# Big inputs, one each (explicit: generating them would be slow)
# --------------------------------------------------------------------------

MEGABYTE = 1024 * 1024


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_ten_thousand_levels_of_nesting(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    for raw in [
        opener * 10_000,
        opener * 10_000 + "1" + closer * 10_000,
        json.dumps(VALID["track"])[:-1]
        + ', "properties": {"x": '
        + opener * 10_000
        + "1"
        + closer * 10_000
        + "}}",
    ]:
        assert "nest" in rejected(raw).reason or "recursion" in rejected(raw).reason


@pytest.mark.parametrize(
    "number",
    ["1e400", "-1e400", "1E+999", "1" + "0" * 5000, "-1" + "0" * 5000, "1" + "0" * 400 + ".0"],
)
@pytest.mark.parametrize("where", ["properties.x", "traits.company", "context.n", "extra"])
def test_numbers_a_double_cannot_hold_are_rejected(number: str, where: str) -> None:
    body = mutated(VALID["track"] | VALID["identify"], [(where, "NUMBER")])
    raw = json.dumps(body).replace('"NUMBER"', number)
    for message in (raw, raw.replace('"identify"', '"track"')):
        assert "number" in rejected(message).reason


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["properties.x", "traits.company", "context.n", "extra"])
def test_nan_and_infinity_are_not_json(literal: str, where: str) -> None:
    body = mutated(VALID["track"] | VALID["identify"], [(where, "LITERAL")])
    raw = json.dumps(body).replace('"LITERAL"', literal)
    for message in (raw, raw.replace('"identify"', '"track"')):
        rejected(message)


def test_big_but_finite_numbers_are_accepted() -> None:
    raw = json.dumps(mutated(VALID["identify"], [("traits.company", 1.7e308)]))
    check(raw)
    assert not isinstance(parse_message(raw), Rejection)


@pytest.mark.parametrize(
    "field", ["type", "messageId", "userId", "anonymousId", "groupId", "previousId", "timestamp",
              "properties.framework", "properties.criteria.budget"]
)  # fmt: skip
def test_a_megabyte_string_in_a_checked_field_is_rejected_with_a_short_reason(field: str) -> None:
    base = {"properties": VALID["qualification"], "previousId": VALID["alias"]}
    body = base.get(field.split(".")[0], VALID["group"])
    raw = json.dumps(mutated(body, [(field, "x" * MEGABYTE)]))
    rejected(raw)


def test_a_megabyte_key_in_the_criteria_is_rejected_with_a_short_reason() -> None:
    body = mutated(VALID["qualification"], [("properties.criteria", {"x" * MEGABYTE: True})])
    rejected(json.dumps(body))


@pytest.mark.parametrize("field", ["event", "name", "properties.path", "traits.bio", "extra"])
def test_a_megabyte_string_in_a_free_field_is_fine(field: str) -> None:
    base = VALID["page"] if field == "name" else VALID["track"] | VALID["identify"]
    for type_ in {"page"} if field == "name" else {"track", "identify"}:
        raw = json.dumps(mutated(base | {"type": type_}, [(field, "x" * MEGABYTE)]))
        assert not isinstance(parse_message(raw), Rejection)
        check(raw)


@pytest.mark.parametrize("as_text", [False, True])
def test_a_byte_order_mark_is_ignored(as_text: bool) -> None:
    # RFC 8259 8.1: a parser may ignore one (Windows tools write it).
    raw = "\ufeff" + json.dumps(VALID["track"])
    parsed = parse_message(raw if as_text else raw.encode())
    assert not isinstance(parsed, Rejection), parsed
    rejected("\ufeff\ufeff" + json.dumps(VALID["track"]))


@pytest.mark.parametrize(
    "raw", [b"", b" ", b"\n", "", b"\x00", b"\xef\xbb\xbf", b"null", b"{}", None, b"\xff" * 100]
)
def test_empty_and_null_inputs_are_rejected(raw: bytes | str | None) -> None:
    rejected(raw)  # type: ignore[arg-type]  # None: a Kafka record with a null value
