"""The rules file: its schema, its loading, and the indexes the engine uses.

A file that breaks the schema is rejected with every problem's path and
reason (`RulesError`), before any event is read.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from datetime import time
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from scoring.calendar import WEEKDAYS, BusinessHours, add_working_time
from scoring.conditions import Where, compile_condition, compile_where, where_holds
from scoring.errors import RulesError
from scoring.messages import CRITERIA, Framework, Message, SalesEvent

OPERATORS = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte",
    "contains", "starts_with", "ends_with", "matches", "exists",
)  # fmt: skip
SECONDS_PER_DAY = 86_400.0

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)]
Points = Annotated[float, Field(allow_inf_nan=False)]


class _Schema(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_where(where: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for path, operators in where.items():
        if not path or any(not step for step in path.split(".")):
            raise ValueError(f"{path!r} is not a dotted path")
        if not isinstance(operators, Mapping) or not operators:
            raise ValueError(f"{path}: expected a map of operators ({', '.join(OPERATORS)})")
        for name, operand in operators.items():
            if name not in OPERATORS:
                raise ValueError(f"{path}: unknown operator {name!r} ({', '.join(OPERATORS)})")
            if name in ("in", "not_in") and not isinstance(operand, list):
                raise ValueError(f"{path}.{name}: expected a list")
            if name == "exists" and not isinstance(operand, bool):
                raise ValueError(f"{path}.exists: expected true or false")
            if name in ("starts_with", "ends_with", "matches") and not isinstance(operand, str):
                raise ValueError(f"{path}.{name}: expected a string")
            if name in ("gt", "gte", "lt", "lte") and (
                isinstance(operand, bool) or not isinstance(operand, int | float | str)
            ):
                raise ValueError(f"{path}.{name}: expected a number or a string")
            if name == "matches":
                try:
                    re.compile(operand)
                except re.error as error:
                    raise ValueError(
                        f"{path}.matches: invalid regular expression: {error}"
                    ) from None
        compile_condition(operators)
    return where


class Limit(_Schema):
    """At most `count` counted firings of a rule in any rolling `per_days` of event time."""

    count: Annotated[int, Field(gt=0)]
    per_days: Annotated[float, Field(gt=0, allow_inf_nan=False)]

    @cached_property
    def window(self) -> float:
        """`per_days` in seconds."""
        return self.per_days * SECONDS_PER_DAY


class EngagementRule(_Schema):
    id: RuleId
    type: Literal["track", "page", "screen", "identify", "group", "alias"] = "track"
    event: str | None = None
    where: dict[str, dict[str, Any]] = Field(default_factory=dict)
    points: Points
    limit: Limit | None = None

    _check = field_validator("where")(_check_where)

    @model_validator(mode="after")
    def _event_fits_type(self) -> EngagementRule:
        if self.type == "track" and not self.event:
            raise ValueError("event is required for a track rule")
        if self.type != "track" and self.event is not None:
            raise ValueError(f"event applies only to track rules, not to type {self.type}")
        return self


class FitRule(_Schema):
    id: RuleId
    where: dict[str, dict[str, Any]] = Field(default_factory=dict)
    points: Points = 0.0
    disqualify: bool = False

    _check = field_validator("where")(_check_where)

    @model_validator(mode="after")
    def _disqualifier_has_no_points(self) -> FitRule:
        if self.disqualify and self.points:
            raise ValueError("a disqualify rule has no points")
        return self


class Engagement(_Schema):
    half_life_days: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    rules: list[EngagementRule] = Field(default_factory=list)


class Fit(_Schema):
    rules: list[FitRule] = Field(default_factory=list)


class Qualification(_Schema):
    framework: Framework = Framework.BANT
    require: Annotated[int, Field(gt=0)] | None = None

    @field_validator("framework", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _require_within_criteria(self) -> Qualification:
        criteria = len(CRITERIA[self.framework])
        if self.require is not None and self.require > criteria:
            raise ValueError(f"require is {self.require}, but {self.framework} has {criteria}")
        return self

    @property
    def criteria(self) -> tuple[str, ...]:
        return CRITERIA[self.framework]

    @property
    def required(self) -> int:
        """Criteria that must be met; by default three quarters of them, rounded up."""
        return self.require or math.ceil(0.75 * len(self.criteria))


class MqlThresholds(_Schema):
    min_fit: Points
    min_engagement: Points


class Stages(_Schema):
    mql: MqlThresholds
    mql_exit_margin: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0

    @property
    def mql_exit_line(self) -> float:
        """An mql lead falls back to lead when engagement drops below this."""
        return self.mql.min_engagement - self.mql_exit_margin


Hours = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKING_WEEK: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


class BusinessHoursSpec(_Schema):
    """When SLA time counts: from `start` to `end` on `days`, wall-clock time in `time_zone`."""

    time_zone: str
    days: list[Weekday] = Field(default_factory=lambda: list(WORKING_WEEK))
    start: time
    end: time

    def summary(self) -> str:
        """E.g. 'mon-fri 09:00-17:00 Europe/Berlin'."""
        days = ", ".join(self.days)
        if list(self.days) == list(WORKING_WEEK):
            days = "mon-fri"
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.time_zone}"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Berlin)") from None
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _sexagesimal(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 17:00 as the number 1020 (minutes, base 60).
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            return time(value // 60, value % 60)
        return value

    @field_validator("days")
    @classmethod
    def _some_days(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one working day is needed")
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHoursSpec:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}, on one day")
        return self

    def compiled(self) -> BusinessHours:
        days = frozenset(WEEKDAYS.index(day) for day in self.days)
        return BusinessHours(ZoneInfo(self.time_zone), days, self.start, self.end)


class Sales(_Schema):
    """The sales follow-up: how soon a rep must act on a new SQL."""

    sla_hours: Hours
    business_hours: BusinessHoursSpec | None = None
    escalate_after_hours: Hours | None = None
    # Events that count as acting, beside Lead Accepted, Lead Rejected and Lead Recycled.
    acted_on: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list
    )


# Acting on a lead, whatever the rules say.
ACTING_EVENTS = frozenset(
    {SalesEvent.LEAD_ACCEPTED, SalesEvent.LEAD_REJECTED, SalesEvent.LEAD_RECYCLED}
)


class RulesFile(_Schema):
    """The schema of the rules file."""

    version: str
    engagement: Engagement = Field(default_factory=Engagement)
    fit: Fit = Field(default_factory=Fit)
    qualification: Qualification = Field(default_factory=Qualification)
    stages: Stages
    sales: Sales | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesFile:
        seen: set[str] = set()
        ids = [rule.id for rule in self.engagement.rules] + [rule.id for rule in self.fit.rules]
        for rule_id in ids:
            if rule_id in seen:
                raise ValueError(f"rule id {rule_id!r} is used twice")
            seen.add(rule_id)
        return self


class Rules:
    """A validated rules file, compiled: the indexes and numbers the engine reads per message."""

    __slots__ = (
        "_by_kind",
        "_engagement",
        "_fit",
        "acting_events",
        "business_hours",
        "fingerprint",
        "half_life",
        "mql_exit_line",
        "qualification",
        "sales",
        "spec",
        "stages",
        "version",
    )

    def __init__(self, spec: RulesFile) -> None:
        self.spec = spec
        self.version = spec.version
        self.stages = spec.stages
        self.qualification = spec.qualification
        # The sales follow-up (None: no SLA is kept), its calendar and the events that act.
        self.sales = spec.sales
        hours = spec.sales.business_hours if spec.sales is not None else None
        self.business_hours = hours.compiled() if hours is not None else None
        extra = spec.sales.acted_on if spec.sales is not None else []
        self.acting_events = frozenset({*(str(event) for event in ACTING_EVENTS), *extra})
        # The engagement half-life in seconds; None when engagement does not decay.
        days = spec.engagement.half_life_days
        self.half_life = None if days is None else days * SECONDS_PER_DAY
        # An mql lead falls back to lead when engagement drops below this line.
        self.mql_exit_line = spec.stages.mql_exit_line
        # Changes whenever anything in the rules changes, even if `version` does not.
        canonical = spec.model_dump_json().encode()
        self.fingerprint = hashlib.blake2b(canonical, digest_size=8).hexdigest()
        by_kind: dict[tuple[str, str | None], list[tuple[EngagementRule, Where]]] = {}
        for rule in spec.engagement.rules:
            compiled = (rule, compile_where(rule.where))
            by_kind.setdefault((rule.type, rule.event), []).append(compiled)
        self._by_kind = {kind: tuple(rules) for kind, rules in by_kind.items()}
        self._engagement = {rule.id: rule for rule in spec.engagement.rules}
        # Each fit rule with the top-level traits it reads.
        self._fit = tuple(
            (rule, compile_where(rule.where), frozenset(path.split(".")[0] for path in rule.where))
            for rule in spec.fit.rules
        )

    def sla_instants(self, qualified_at: float) -> tuple[float, float | None]:
        """When an SQL qualified at `qualified_at` breaches its SLA, and escalates (None:
        no escalation), in epoch seconds. Needs a `sales` section."""
        sales = self.sales
        assert sales is not None
        hours = self.business_hours
        due = add_working_time(qualified_at, sales.sla_hours * 3600.0, hours)
        after = sales.escalate_after_hours
        return due, None if after is None else add_working_time(due, after * 3600.0, hours)

    def engagement_rule(self, rule_id: str) -> EngagementRule | None:
        return self._engagement.get(rule_id)

    def engagement_rules_matching(self, message: Message) -> list[EngagementRule]:
        """The engagement rules a message fires (each at most once)."""
        event = message.event if message.type == "track" else None
        candidates = self._by_kind.get((message.type, event), ())
        return [rule for rule, where in candidates if where_holds(where, message)]

    def fit_rules_matching(
        self,
        traits: Mapping[str, Any],
        changed: AbstractSet[str] | None = None,
        held: AbstractSet[str] = frozenset(),
    ) -> list[FitRule]:
        """The fit rules whose conditions hold on `traits`, in file order.

        With `changed`, the top-level traits that changed since `held` (the ids of
        the rules that held then) was computed: a rule that reads none of them keeps
        its result without being evaluated again.
        """
        if changed is None:
            return [rule for rule, where, _ in self._fit if where_holds(where, traits)]
        return [
            rule
            for rule, where, reads in self._fit
            if (where_holds(where, traits) if reads & changed else rule.id in held)
        ]


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """Rules from YAML text; RulesError listing every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError(source, [f"not valid YAML: {error}"]) from None
    if not isinstance(document, Mapping):
        raise RulesError(source, ["expected a YAML map at the top level"])
    try:
        return Rules(RulesFile.model_validate(document))
    except ValidationError as error:
        raise RulesError(source, [_problem(detail) for detail in error.errors()]) from None


def load_rules(path: Path | str | None = None) -> Rules:
    """Rules from a file, or the example rules shipped with leadscore when no path is given."""
    if path is None:
        text = resources.files("scoring").joinpath("example_rules.yaml").read_text("utf-8")
        return parse_rules(text, "the example rules")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as error:
        raise RulesError(str(path), [f"cannot read the file: {error.strerror}"]) from None
    return parse_rules(text, str(path))


def _problem(detail: Any) -> str:
    location = ""
    for part in detail["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else part)
    message = str(detail["msg"]).removeprefix("Value error, ")
    return f"{location or '(top level)'}: {message}"


def rule_changes(old: Rules, new: Rules) -> list[str]:
    """What changed from `old` to `new`, a line each: rules added, removed or changed
    (with the fields that differ), and every other setting that differs, by its path."""
    before, after = old.spec.model_dump(mode="json"), new.spec.model_dump(mode="json")
    lines = []
    for section in ("engagement", "fit"):
        theirs = {rule["id"]: rule for rule in before[section].pop("rules")}
        ours = {rule["id"]: rule for rule in after[section].pop("rules")}
        for rule_id in dict.fromkeys([*theirs, *ours]):
            if rule_id not in ours:
                lines.append(f"{section} rule {rule_id} removed")
            elif rule_id not in theirs:
                lines.append(f"{section} rule {rule_id} added")
            elif theirs[rule_id] != ours[rule_id]:
                fields = _differences(theirs[rule_id], ours[rule_id], "")
                lines.append(f"{section} rule {rule_id} changed: {'; '.join(fields)}")
    before.pop("version"), after.pop("version")
    lines.extend(_differences(before, after, ""))
    return lines


def _differences(old: Any, new: Any, path: str) -> list[str]:
    """'path: old -> new' for every leaf that differs between two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in dict.fromkeys([*old, *new]):
            found.extend(_differences(old.get(key), new.get(key), f"{path}.{key}" if path else key))
        return found
    if old == new:
        return []
    return [f"{path}: {json.dumps(old)} -> {json.dumps(new)}"]
