"""Funnel analytics folded from transitions: leads per stage, transitions per day,
MQL-to-SQL conversion and the median time it takes; and, folded from the sales
follow-ups, how soon reps act on SQLs.

Pure and bounded: per-day counts for the last `DAYS_KEPT` days, and the
MQL-to-SQL durations as a histogram with 10 buckets per decade (from a
minute to ten years), so the median is exact to within a bucket, about 12%.
The latest transitions are kept apart (`Recent`): they change only with a
transition, the totals also with every batch of new leads.

Exact under re-reads (see `Applied` and `LeadFunnel`): the stream folds each
transition in once, however often it is read or sent again.
"""

from __future__ import annotations

import math
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from scoring.outputs import Transition
from scoring.state import Stage

DAYS_KEPT = 60
RECENT_KEPT = 100
FORWARDED_KEPT = 16  # per lead, the ids of its last transitions the funnel counted
BUCKETS_PER_DECADE = 10
SHORTEST_HOURS = 1 / 60  # durations below a minute share the first bucket


class DayCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: str = Field(description="YYYY-MM-DD (UTC, event time)")
    total: int
    counts: dict[str, int] = Field(description="'from>to' -> transitions that day")


class Conversion(BaseModel):
    model_config = ConfigDict(frozen=True)

    reached_mql: int = Field(description="transitions into mql")
    converted: int = Field(description="transitions from mql to sql")
    conversion_rate: float | None
    median_hours_to_sql: float | None = Field(
        description="median time from entering mql to sql (to within about 12%)"
    )


class FollowUpFigures(BaseModel):
    model_config = ConfigDict(frozen=True)

    met: int = Field(description="SQLs a rep acted on within the SLA")
    breached: int = Field(description="SQLs whose SLA ran out first")
    escalated: int
    acted_late: int = Field(description="breached SQLs a rep acted on since")
    within_sla_share: float | None = Field(
        description="met / (met + breached): the share of decided SLAs kept"
    )
    median_hours_to_first_action: float | None = Field(
        description="working hours from sql to a rep's first action, in time or late "
        "(to within about 12%)"
    )


class FunnelView(BaseModel):
    """The answer of GET /funnel."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    stages: dict[str, int]
    transitions_per_day: list[DayCounts]
    mql_to_sql: Conversion
    sales_follow_up: FollowUpFigures


class Origin(BaseModel):
    """Where the record a funnel record stands for was read: "topic:partition" and offset
    (a transition's in `lead-transitions`, a new lead's first message in the input or
    repartition topic)."""

    model_config = ConfigDict(frozen=True)

    source: str
    offset: int


class Applied(BaseModel):
    """What an aggregate has folded in, by position, so that a record read again is
    skipped: the offset of the last funnel record, and per source the offset of the
    last record it stood for (a record sent again, after its sender read its own
    input again, carries the same origin). Bounded by the partition counts."""

    funnel_offset: int = -1
    origins: dict[str, int] = Field(default_factory=dict)

    def take(self, funnel_offset: int, origin: Origin | None) -> bool:
        """True, noting the record as applied, unless it was applied before."""
        if funnel_offset <= self.funnel_offset:
            return False
        self.funnel_offset = funnel_offset
        if origin is not None:
            if origin.offset <= self.origins.get(origin.source, -1):
                return False
            self.origins[origin.source] = origin.offset
        return True


class LeadFunnel(BaseModel):
    """What the funnel feed keeps per lead: when it entered mql (epoch seconds, to time its
    way to sql), and the ids of its last transitions counted, so that a transition sent
    again (at least once, after a crash) is counted once."""

    mql_since: float | None = None
    forwarded: list[str] = Field(default_factory=list)

    @classmethod
    def decode(cls, stored: bytes | None) -> LeadFunnel:
        if stored is None:
            return cls()
        if not stored.startswith(b"{"):  # an earlier version kept the time alone
            return cls(mql_since=float(stored))
        return cls.model_validate_json(stored)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    def take(self, transition: Transition) -> bool:
        """True, noting the transition as counted, unless it was counted before."""
        if transition.transition_id in self.forwarded:
            return False
        self.forwarded = [*self.forwarded[-FORWARDED_KEPT + 1 :], transition.transition_id]
        return True

    def hours_to_sql(self, transition: Transition) -> float | None:
        """Follow the lead through `transition`: the hours from mql, if it goes to sql."""
        if transition.to_stage is Stage.MQL:
            self.mql_since = transition.occurred_at.timestamp()
            return None
        if transition.from_stage is not Stage.MQL:
            return None
        entered, self.mql_since = self.mql_since, None
        if entered is None or transition.to_stage is not Stage.SQL:
            return None
        return max(0.0, (transition.occurred_at.timestamp() - entered) / 3600)


class Funnel(BaseModel):
    """The running totals (stored as JSON in the stream's funnel table)."""

    applied: Applied = Field(default_factory=Applied)

    stages: dict[str, int] = Field(default_factory=lambda: {stage.value: 0 for stage in Stage})
    per_day: dict[str, dict[str, int]] = Field(default_factory=dict)
    reached_mql: int = 0
    converted: int = 0
    # Bucket index -> MQL-to-SQL conversions that took that long (see `_bucket`).
    hours_to_sql: dict[int, int] = Field(default_factory=dict)
    # Sales follow-ups by kind, and the first actions' working hours (buckets as above).
    follow_ups: dict[str, int] = Field(default_factory=dict)
    hours_to_action: dict[int, int] = Field(default_factory=dict)

    def add_new_leads(self, count: int) -> None:
        self.stages[Stage.LEAD] += count

    def remove_lead(self, stage: Stage) -> None:
        """A lead gone (merged into another, or deleted) leaves its stage's count."""
        self.stages[stage] -= 1

    def add(self, transition: Transition, hours_to_sql: float | None) -> None:
        self.stages[transition.from_stage] -= 1
        self.stages[transition.to_stage] += 1
        day = transition.occurred_at.date().isoformat()
        counts = self.per_day.setdefault(day, {})
        move = f"{transition.from_stage}>{transition.to_stage}"
        counts[move] = counts.get(move, 0) + 1
        for old in sorted(self.per_day)[:-DAYS_KEPT]:
            del self.per_day[old]
        if transition.to_stage is Stage.MQL:
            self.reached_mql += 1
        if transition.from_stage is Stage.MQL and transition.to_stage is Stage.SQL:
            self.converted += 1
            if hours_to_sql is not None:
                bucket = _bucket(hours_to_sql)
                self.hours_to_sql[bucket] = self.hours_to_sql.get(bucket, 0) + 1

    def add_follow_up(self, kind: str, working_hours: float) -> None:
        self.follow_ups[kind] = self.follow_ups.get(kind, 0) + 1
        if kind in ("sla_met", "sla_acted_late"):
            bucket = _bucket(working_hours)
            self.hours_to_action[bucket] = self.hours_to_action.get(bucket, 0) + 1

    def median_hours_to_sql(self) -> float | None:
        return _median(self.hours_to_sql)

    def follow_up_figures(self) -> FollowUpFigures:
        counts = self.follow_ups
        met, breached = counts.get("sla_met", 0), counts.get("sla_breach", 0)
        return FollowUpFigures(
            met=met,
            breached=breached,
            escalated=counts.get("sla_escalation", 0),
            acted_late=counts.get("sla_acted_late", 0),
            within_sla_share=met / (met + breached) if met + breached else None,
            median_hours_to_first_action=_median(self.hours_to_action),
        )

    def view(self, as_of: datetime) -> FunnelView:
        return FunnelView(
            as_of=as_of,
            stages=dict(self.stages),
            transitions_per_day=[
                DayCounts(day=day, total=sum(counts.values()), counts=counts)
                for day, counts in sorted(self.per_day.items())
            ],
            mql_to_sql=Conversion(
                reached_mql=self.reached_mql,
                converted=self.converted,
                conversion_rate=self.converted / self.reached_mql if self.reached_mql else None,
                median_hours_to_sql=self.median_hours_to_sql(),
            ),
            sales_follow_up=self.follow_up_figures(),
        )


class Recent(BaseModel):
    """The latest transitions of all leads, newest last."""

    transitions: list[Transition] = Field(default_factory=list)
    applied: Applied = Field(default_factory=Applied)

    def add(self, transition: Transition) -> None:
        self.transitions = [*self.transitions[-RECENT_KEPT + 1 :], transition]


def _median(histogram: dict[int, int]) -> float | None:
    total = sum(histogram.values())
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if 2 * seen >= total:
            return _bucket_middle(bucket)
    return None


def _bucket(hours: float) -> int:
    return max(
        0, math.floor(BUCKETS_PER_DECADE * math.log10(max(hours, SHORTEST_HOURS) / SHORTEST_HOURS))
    )


def _bucket_middle(bucket: int) -> float:
    return float(SHORTEST_HOURS * 10 ** ((bucket + 0.5) / BUCKETS_PER_DECADE))
