"""Input messages in the Segment Spec shape, and their parsing.

Parsing never raises: `parse_message` returns a `Message` or a `Rejection`
that says, in one line, what is wrong with the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

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
    """Two ids of one person. Accepted; identity stitching is a later feature."""

    type: Literal["alias"]
    previousId: Id


Message = Track | Page | Screen | Identify | Group | Alias

MESSAGE_ADAPTER = TypeAdapter[Message](Annotated[Message, Field(discriminator="type")])
MESSAGE_TYPES = ("track", "page", "screen", "identify", "group", "alias")


RejectionKind = Literal[
    "invalid_json", "not_an_object", "missing_field", "unknown_type", "invalid_field"
]


class Rejection(BaseModel):
    """Input that is not a valid message, and why."""

    model_config = ConfigDict(frozen=True)

    reason: str
    kind: RejectionKind = Field(description="a short category, e.g. for metrics")


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
    """Parse one JSON-encoded message; never raises."""
    try:
        message = MESSAGE_ADAPTER.validate_json(raw)
    except ValidationError as error:
        unmarked = _without_byte_order_mark(raw)
        if unmarked is None:
            return Rejection(reason=_describe(error), kind=_kind(error))
        return parse_message(unmarked)
    # pydantic reads NaN, Infinity and numbers past a double's range (1e400) as floats
    # that JSON cannot write back: a state holding one would not survive its encoding.
    fields = message.__dict__
    for name in _FREE_FORM:
        values = fields.get(name)
        if values and not _all_finite(values.values()):
            return _not_a_number([name, *_non_finite_at(values)])
    extra = message.__pydantic_extra__
    if extra and not _all_finite(extra.values()):
        return _not_a_number(_non_finite_at(extra))
    return message


_FREE_FORM = ("properties", "traits", "context")
_UTF8_BOM = b"\xef\xbb\xbf"


def _without_byte_order_mark(raw: object) -> bytes | str | None:
    """The input without its leading byte order mark, if it has one (RFC 8259 8.1 lets a
    parser ignore it; Windows tools write it). Only one: two are not a JSON text."""
    if isinstance(raw, bytes) and raw.startswith(_UTF8_BOM) and not raw.startswith(_UTF8_BOM, 3):
        return raw[len(_UTF8_BOM) :]
    if isinstance(raw, str) and raw.startswith("\ufeff") and not raw.startswith("\ufeff", 1):
        return raw[1:]
    return None


def _all_finite(values: Iterable[Any]) -> bool:
    """Whether no number in these JSON values, however deep, is NaN or infinite."""
    for value in values:
        kind = type(value)
        if kind is str:
            continue
        if kind is float:
            if value - value != 0.0:  # NaN or infinite; faster than math.isfinite here
                return False
        elif kind is dict:
            if not _all_finite(value.values()):
                return False
        elif kind is list and not _all_finite(value):
            return False
    return True


def _non_finite_at(values: dict[str, Any] | list[Any]) -> list[str]:
    """Where the first NaN or infinite number is (for a reason: the slow way)."""
    for key, value in values.items() if isinstance(values, dict) else enumerate(values):
        if not _all_finite([value]):
            return [str(key), *(_non_finite_at(value) if isinstance(value, dict | list) else [])]
    return []


def _not_a_number(path: list[str]) -> Rejection:
    where = ".".join(
        part if len(part) <= 40 and part.isprintable() else _shown(part) for part in path
    )
    return Rejection(
        reason=f"Invalid JSON: {where}: NaN, Infinity or a number too large for a double",
        kind="invalid_json",
    )


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
