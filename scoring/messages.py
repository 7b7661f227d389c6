"""Input messages in the Segment Spec shape, and their parsing.

Parsing never raises: `parse_message` returns a `Message` or a `Rejection`
that says, in one line, what is wrong with the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)

NonEmptyStr = Annotated[str, Field(min_length=1)]


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

    messageId: NonEmptyStr
    # Strict: an ISO-8601 string with an offset; no naive times, no epoch numbers.
    timestamp: Annotated[AwareDatetime, Strict()]
    userId: NonEmptyStr | None = None
    anonymousId: NonEmptyStr | None = None
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
    groupId: NonEmptyStr
    traits: dict[str, Any] = Field(default_factory=dict)


class Alias(_Message):
    """Two ids of one person. Accepted; identity stitching is a later feature."""

    type: Literal["alias"]
    previousId: NonEmptyStr


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
            f"properties.framework must be one of {known}, got {framework_name!r}"
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
                f"properties.criteria: {name!r} is not a {framework} criterion "
                f"({', '.join(allowed)})"
            )
        if not isinstance(met, bool):
            raise ValueError(f"properties.criteria.{name} must be true or false, got {met!r}")
        update[criterion] = met
    return framework, update


def parse_message(raw: bytes | str) -> Message | Rejection:
    """Parse one JSON-encoded message; never raises."""
    try:
        return MESSAGE_ADAPTER.validate_json(raw)
    except ValidationError as error:
        return Rejection(reason=_describe(error), kind=_kind(error))


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
            message = f"unknown type {tag!r} (expected one of {', '.join(MESSAGE_TYPES)})"
        elif detail["type"] == "union_tag_not_found":
            message = "type is required"
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems)
