"""Input as it really arrives: what real pipelines send, read into the canonical shape.

Segment's and RudderStack's SDKs, HTTP APIs, webhook destinations and webhook sources
do not all send the canonical message. `normalize` turns a decoded message into it
whenever its meaning is clear, and says what to fix when it is not:

- Event time: `timestamp`; else Segment's skew correction when `originalTimestamp`,
  `sentAt` and `receivedAt` are all there (`receivedAt - (sentAt - originalTimestamp)`);
  else `originalTimestamp`, `receivedAt`, `sentAt`, the first one present. An ISO
  string with no offset is UTC; a number is epoch seconds, or milliseconds above 1e11.
- No `messageId` (or a blank one): one derived from the content (a hash of its canonical JSON), so a
  resent copy still dedupes.
- Ids given as numbers become strings; placeholders that identify nobody (empty, `0`,
  `-1`, `null`, `undefined`, `anonymous`, case-insensitive) count as absent.
- `identify` traits: `traits` over `context.traits` (RudderStack's SDKs send only the
  latter); the top-level value wins per trait.
- A `context` or `integrations` that is null or an empty list (PHP's encoding of an
  empty object, as in Segment's own `delete` examples) is absent.

The decoded dict is the caller's own (fresh from the JSON parser): it is changed in place.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import orjson

PLACEHOLDER_IDS = frozenset({"", "0", "-1", "null", "undefined", "anonymous"})
ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId")
# Segment's order when `timestamp` is absent (its own rule needs all three).
TIME_FIELDS = ("originalTimestamp", "receivedAt", "sentAt")
_OBJECT_FIELDS = ("context", "integrations")
MILLISECONDS_ABOVE = 1e11
FIRST_INSTANT = 0.0  # 1970-01-01
END_INSTANT = datetime(2200, 1, 1, tzinfo=UTC).timestamp()  # event times end with 2199
DERIVED_ID_PREFIX = "content-"
_LONGEST_PLACEHOLDER = max(len(word) for word in PLACEHOLDER_IDS) + 2  # with spaces round it
_EXACT_INTEGERS = 2**53  # past this, a JSON number read as a double has lost digits
_NAIVE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?")
_WITH_OFFSET = re.compile(
    r"(?:19[7-9][0-9]|2[01][0-9]{2})-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_MISSING = object()


class Unreadable(ValueError):
    """A message whose meaning is not clear; the text says what to fix."""

    def __init__(self, reason: str, kind: str = "invalid_field") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """The message in the canonical shape (the same dict); Unreadable if it cannot be."""
    message_id = data.get("messageId")
    if message_id is None or (type(message_id) is str and not message_id.strip()):
        data["messageId"] = derived_message_id(data)
    elif type(message_id) is int:
        data["messageId"] = str(message_id)
    for name in _OBJECT_FIELDS:
        value = data.get(name, _MISSING)
        if value is None or value == []:
            del data[name]
    for name in ID_FIELDS:
        value = data.get(name, _MISSING)
        if value is _MISSING or value is None:
            continue
        kind = type(value)
        if kind is str:
            if len(value) <= _LONGEST_PLACEHOLDER and value.strip().lower() in PLACEHOLDER_IDS:
                del data[name]
        elif kind is int or kind is float:
            text = _id_of_number(name, value)
            if text is None:
                del data[name]
            else:
                data[name] = text
    stamp = data.get("timestamp")
    if stamp is None:
        data["timestamp"] = _fallback_time(data)
    elif type(stamp) is str:
        if stamp[-1:] not in ("Z", "z") and _NAIVE.fullmatch(stamp):
            data["timestamp"] = stamp + "Z"
    elif type(stamp) is int or type(stamp) is float:
        data["timestamp"] = _iso(_epoch("timestamp", stamp))
    if data.get("type") == "identify":
        _traits_over_context_traits(data)
    return data


def derived_message_id(data: dict[str, Any]) -> str:
    """A messageId for a message that has none: the same for the same content."""
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return DERIVED_ID_PREFIX + hashlib.blake2b(canonical, digest_size=16).hexdigest()


def _id_of_number(name: str, value: float) -> str | None:
    if type(value) is float:
        if not value.is_integer():
            raise Unreadable(f"{name}: a number must be a whole number, got {value!r}")
        if abs(value) > _EXACT_INTEGERS:
            raise Unreadable(f"{name}: a number this large has lost digits; send it as a string")
        value = int(value)
    if value in (0, -1):
        return None  # placeholders, like "0" and "-1"
    return str(value)


def _fallback_time(data: dict[str, Any]) -> str:
    present = {name: data[name] for name in TIME_FIELDS if data.get(name) is not None}
    if len(present) == len(TIME_FIELDS):
        original, received, sent = (_instant(name, present[name]) for name in TIME_FIELDS)
        corrected = received - (sent - original)
        if not FIRST_INSTANT <= corrected < END_INSTANT:
            raise Unreadable(
                "timestamp: receivedAt - (sentAt - originalTimestamp) falls outside 1970 to 2199"
            )
        return _iso(corrected)
    for name, value in present.items():
        return _iso(_instant(name, value))
    raise Unreadable(
        "timestamp is required (or one of originalTimestamp, receivedAt, sentAt)",
        kind="missing_field",
    )


def _instant(name: str, value: Any) -> float:
    """A time field's instant in epoch seconds."""
    if type(value) is int or type(value) is float:
        return _epoch(name, value)
    if type(value) is not str:
        raise Unreadable(f"{name}: must be an ISO-8601 date-time or epoch seconds")
    if _NAIVE.fullmatch(value):
        value += "Z"
    if not _WITH_OFFSET.fullmatch(value):
        raise Unreadable(
            f"{name}: must be an RFC 3339 date-time (with an offset, or none for UTC), "
            "e.g. 2026-11-01T09:00:00Z, in the years 1970 to 2199"
        )
    try:
        return datetime.fromisoformat(value.upper()).timestamp()
    except ValueError:
        raise Unreadable(
            f"{name}: not a real date and time (a day, hour or second out of range)"
        ) from None


def _epoch(name: str, value: float) -> float:
    seconds = value / 1000 if value > MILLISECONDS_ABOVE else float(value)
    if not FIRST_INSTANT <= seconds < END_INSTANT:
        raise Unreadable(
            f"{name}: a number must be epoch seconds or milliseconds (1970 to 2199), got {value!r}"[
                :200
            ]
        )
    return seconds


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _traits_over_context_traits(data: dict[str, Any]) -> None:
    context = data.get("context")
    if type(context) is not dict:
        return
    inner = context.get("traits")
    if type(inner) is not dict or not inner:
        return
    traits = data.get("traits")
    if traits is None:
        data["traits"] = dict(inner)
    elif type(traits) is dict:
        data["traits"] = {**inner, **traits}
