"""Funnel analytics folded from transitions: leads per stage, transitions per day,
MQL-to-SQL conversion and the median time it takes.

Pure and bounded: per-day counts for the last `DAYS_KEPT` days, the last
`DURATIONS_KEPT` MQL-to-SQL durations (the median is over those), and the
last `RECENT_KEPT` transitions.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from scoring.outputs import Transition
from scoring.state import Stage

DAYS_KEPT = 60
DURATIONS_KEPT = 5_000
RECENT_KEPT = 100


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
        description=f"median time from entering mql to sql, over the last {DURATIONS_KEPT}"
    )


class FunnelView(BaseModel):
    """The answer of GET /funnel."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    stages: dict[str, int]
    transitions_per_day: list[DayCounts]
    mql_to_sql: Conversion


class Funnel(BaseModel):
    """The running aggregate (stored as JSON in the stream's funnel table)."""

    stages: dict[str, int] = Field(default_factory=lambda: {stage.value: 0 for stage in Stage})
    per_day: dict[str, dict[str, int]] = Field(default_factory=dict)
    reached_mql: int = 0
    converted: int = 0
    hours_to_sql: list[float] = Field(default_factory=list)
    recent: list[Transition] = Field(default_factory=list, description="newest last")

    def add_new_leads(self, count: int) -> None:
        self.stages[Stage.LEAD] += count

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
                self.hours_to_sql = [*self.hours_to_sql[-DURATIONS_KEPT + 1 :], hours_to_sql]
        self.recent = [*self.recent[-RECENT_KEPT + 1 :], transition]

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
                median_hours_to_sql=statistics.median(self.hours_to_sql)
                if self.hours_to_sql
                else None,
            ),
        )
