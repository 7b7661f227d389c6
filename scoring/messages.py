"""Input messages in the Segment Spec shape, and their parsing.

Parsing never raises: `parse_input` returns a `Message`, a `Batch` of them (a
`{"batch": [...]}` body), or a `Rejection` that says, in one line, what is wrong
with the input. Real pipelines' variants are read first (`scoring.normalize`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from scoring.normalize import Unreadable, normalize

NonEmptyStr = Annotated[str, Field(min_length=1)]
# Ids end up in Kafka keys, state, every transition and alert: one that no real system
# makes (a megabyte) would make those records too big for Kafka, so it is refused here.
MAX_ID_LENGTH = 1024
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]

# RFC 3339 (what JSON Schema's date-time means), with an offset, years 1970 through 2199:
# an instant the core can turn into a datetime again, with millennia to spare for decay.
EVENT_TIME_PATTERN = (
    r"^(?:19[7-9][0-9]|2[01][0-9]{2})-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
EVENT_TIME_FORM = (
    "an RFC 3339 date-time with an offset, e.g. 2026-11-01T09:00:00Z, in the years 1970 to 2199"
)


class _EventTime:
    """A message's `timestamp`: the pattern first, then the date, both in pydantic-core.

    The pattern keeps out what pydantic's own parser would take (epoch numbers as
    strings, "2026-11-01 09:00", "+0100" offsets) and dates the core cannot handle.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        rfc3339 = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=EVENT_TIME_PATTERN, strict=True),
            "event_time",
            custom_error_message=f"must be {EVENT_TIME_FORM}",
        )
        # Lax: the input is a str by now. Its errors would say "datetime or date".
        real = core_schema.custom_error_schema(
            core_schema.datetime_schema(tz_constraint="aware"),
            "event_time",
            custom_error_message="not a real date and time (a day, hour or second out of range)",
        )
        return core_schema.chain_schema([rfc3339, real])

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time", "pattern": EVENT_TIME_PATTERN}


class Framework(StrEnum):
    """Qualification frameworks sales uses to confirm an SQL."""

    BANT = "BANT"
    CHAMP = "CHAMP"
    ANUM = "ANUM"
    FAINT = "FAINT"
    GPCT = "GPCT"


CRITERIA: dict[Framework, tuple[str, ...]] = {
    Framework.BANT: ("budget", "authority", "need", "timeline"),
    Framework.CHAMP: ("challenges", "authority", "money", "prioritization"),
    Framework.ANUM: ("authority", "need", "urgency", "money"),
    Framework.FAINT: ("funds", "authority", "interest", "need", "timing"),
    Framework.GPCT: ("goals", "plans", "challenges", "timeline"),
}


class SalesEvent(StrEnum):
    """Reserved `track` events: feedback from sales and the CRM."""

    QUALIFICATION_UPDATED = "Qualification Updated"
    LEAD_ACCEPTED = "Lead Accepted"
    LEAD_REJECTED = "Lead Rejected"
    LEAD_RECYCLED = "Lead Recycled"


class _Message(BaseModel):
    """Fields every Segment message has. Unknown top-level fields are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    messageId: Id
    timestamp: Annotated[datetime, _EventTime] = Field(description=f"event time: {EVENT_TIME_FORM}")
    userId: Id | None = None
    anonymousId: Id | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_an_id(self) -> _Message:
        if self.userId is None and self.anonymousId is None:
            raise ValueError("userId or anonymousId is required")
        return self

    @property
    def at(self) -> float:
        """Event time in epoch seconds: the core's unit of time."""
        return self.timestamp.timestamp()

    @property
    def lead_id(self) -> str:
        """The lead the message is about: the known user, else the anonymous visitor."""
        return self.userId or self.anonymousId  # type: ignore[return-value]


class Track(_Message):
    """An interaction, e.g. "Email Opened"; also the reserved sales events."""

    type: Literal["track"]
    event: NonEmptyStr
    properties: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_sales_event(self) -> Track:
        if self.event == SalesEvent.QUALIFICATION_UPDATED:
            qualification_update(self.properties)
        return self


class Page(_Message):
    """A page visit."""

    type: Literal["page"]
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Screen(_Message):
    """An app screen view."""

    type: Literal["screen"]
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Identify(_Message):
    """Attributes of the lead (its fit)."""

    type: Literal["identify"]
    traits: dict[str, Any] = Field(default_factory=dict)


class Group(_Message):
    """Attributes of the lead's company, merged into the `company.*` traits."""

    type: Literal["group"]
    groupId: Id
    traits: dict[str, Any] = Field(default_factory=dict)


class Alias(_Message):
    """Two ids of one person: `previousId` (an anonymous id, or an older user id) is
    `userId` (see scoring.identity)."""

    type: Literal["alias"]
    previousId: Id


class Delete(_Message):
    """Segment's user-deletion request: forget the lead."""

    type: Literal["delete"]
    userId: Id


Message = Track | Page | Screen | Identify | Group | Alias | Delete

MESSAGE_ADAPTER = TypeAdapter[Message](Annotated[Message, Field(discriminator="type")])
MESSAGE_TYPES = ("track", "page", "screen", "identify", "group", "alias", "delete")


RejectionKind = Literal[
    "invalid_json", "not_an_object", "missing_field", "unknown_type", "invalid_field"
]


class Rejection(BaseModel):
    """Input that is not a valid message, and why."""

    model_config = ConfigDict(frozen=True)

    reason: str
    kind: RejectionKind = Field(description="a short category, e.g. for metrics")
    index: int | None = Field(
        default=None, description="the item's index in a batch body, if it was one"
    )


class Batch(tuple[Message | Rejection, ...]):
    """The messages of a `{"batch": [...]}` body, in order; a bad item is its Rejection
    (with its index), the others are applied."""

    __slots__ = ()


def qualification_update(properties: Mapping[str, Any]) -> tuple[Framework, dict[str, bool]]:
    """The framework and criteria of a `Qualification Updated` event; ValueError if malformed."""
    framework_name = properties.get("framework")
    try:
        framework = Framework(str(framework_name).upper())
    except ValueError:
        known = ", ".join(Framework)
        raise ValueError(
            f"properties.framework must be one of {known}, got {_shown(framework_name)}"
        ) from None
    criteria = properties.get("criteria")
    if not isinstance(criteria, Mapping) or not criteria:
        raise ValueError("properties.criteria must be a non-empty map of criterion to true/false")
    allowed = CRITERIA[framework]
    update: dict[str, bool] = {}
    for name, met in criteria.items():
        criterion = str(name).lower()
        if criterion not in allowed:
            raise ValueError(
                f"properties.criteria: {_shown(name)} is not a {framework} criterion "
                f"({', '.join(allowed)})"
            )
        if not isinstance(met, bool):
            raise ValueError(
                f"properties.criteria.{criterion} must be true or false, got {_shown(met)}"
            )
        update[criterion] = met
    return framework, update


def parse_message(raw: bytes | str) -> Message | Rejection:
    """Parse one JSON-encoded message; never raises. A batch body is refused here
    (`parse_input` reads it)."""
    parsed = parse_input(raw)
    if isinstance(parsed, Batch):
        return Rejection(
            reason=f"this is a batch body ({len(parsed)} items) where one message was expected",
            kind="invalid_field",
        )
    return parsed


def parse_input(raw: bytes | str) -> Message | Batch | Rejection:
    """Parse one line or record: a message, or a batch body of them; never raises."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        unmarked = _without_byte_order_mark(raw)
        if unmarked is not None:
            return parse_input(unmarked)
        problem = str(error)
        if problem.startswith("depth limit exceeded"):
            problem = f"nested more than 1024 levels deep ({problem})"
        return Rejection(reason=f"Invalid JSON: {problem}"[:_LONGEST_REASON], kind="invalid_json")
    if type(data) is not dict:
        return Rejection(reason="not a JSON object: a message is one", kind="not_an_object")
    if "batch" in data and "type" not in data:
        return _batch(data)
    return _message(data)


def _message(data: dict[str, Any], index: int | None = None) -> Message | Rejection:
    try:
        return MESSAGE_ADAPTER.validate_python(normalize(data))
    except Unreadable as error:
        kind: RejectionKind = "missing_field" if error.kind == "missing_field" else "invalid_field"
        return Rejection(reason=error.reason, kind=kind, index=index)
    except ValidationError as error:
        return Rejection(reason=_describe(error), kind=_kind(error), index=index)


# A batch body's `context` and `integrations` apply to items that lack them; so does its
# `sentAt` (analytics.js in batching mode and analytics-python set it on the body only)
# and a `receivedAt` a pipeline stamped on it.
_ENVELOPE_FIELDS = ("context", "integrations", "sentAt", "receivedAt")


def _batch(data: dict[str, Any]) -> Batch | Rejection:
    items = data["batch"]
    if type(items) is not list or not items:
        return Rejection(
            reason="batch: must be a non-empty list of messages (a Segment or RudderStack "
            "batch body)",
            kind="invalid_field",
        )
    shared = {name: data[name] for name in _ENVELOPE_FIELDS if data.get(name) is not None}
    parsed: list[Message | Rejection] = []
    for index, item in enumerate(items):
        if type(item) is not dict:
            parsed.append(_item_rejection(index, "not a JSON object", "not_an_object"))
            continue
        if "batch" in item and "type" not in item:
            parsed.append(_item_rejection(index, "a batch inside a batch", "invalid_field"))
            continue
        for name, value in shared.items():
            item.setdefault(name, value)
        message = _message(item, index)
        if isinstance(message, Rejection):
            message = _item_rejection(index, message.reason, message.kind)
        parsed.append(message)
    return Batch(parsed)


def _item_rejection(index: int, reason: str, kind: RejectionKind) -> Rejection:
    return Rejection(reason=f"batch item {index}: {reason}", kind=kind, index=index)


_LONGEST_REASON = 500
_UTF8_BOM = b"\xef\xbb\xbf"


def _without_byte_order_mark(raw: object) -> bytes | str | None:
    """The input without its leading byte order mark, if it has one (RFC 8259 8.1 lets a
    parser ignore it; Windows tools write it). Only one: two are not a JSON text."""
    if isinstance(raw, bytes) and raw.startswith(_UTF8_BOM) and not raw.startswith(_UTF8_BOM, 3):
        return raw[len(_UTF8_BOM) :]
    if isinstance(raw, str) and raw.startswith("\ufeff") and not raw.startswith("\ufeff", 1):
        return raw[1:]
    return None


def _shown(value: object, limit: int = 60) -> str:
    """A piece of the input, for a reason: as Python writes it (one line), cut short."""
    text = repr(value[: limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else f"{text[:limit]}..."


_KINDS: dict[str, RejectionKind] = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "dict_type": "not_an_object",
    "model_attributes_type": "not_an_object",
    "missing": "missing_field",
    "union_tag_not_found": "missing_field",
    "union_tag_invalid": "unknown_type",
}


def _kind(error: ValidationError) -> RejectionKind:
    return _KINDS.get(error.errors(include_url=False)[0]["type"], "invalid_field")


def _describe(error: ValidationError) -> str:
    problems = []
    for detail in error.errors(include_url=False):
        # The first location item is the union tag ("track"); it is noise here.
        location = ".".join(str(part) for part in detail["loc"][1:])
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "union_tag_invalid":
            tag = detail.get("ctx", {}).get("tag")
            message = f"unknown type {_shown(tag)} (expected one of {', '.join(MESSAGE_TYPES)})"
        elif detail["type"] == "union_tag_not_found":
            message = "type is required"
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems)
