"""The shapes of the web API's answers (GET /leads/..., /funnel, /transitions/recent).

Generated into JSON Schemas with the topic contracts (`scoring.schemas`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from scoring.funnel import FunnelView
from scoring.outputs import ScoreSnapshot, Transition
from scoring.state import Stage


class LeadView(ScoreSnapshot):
    """GET /leads/{lead_id}: the lead now (engagement decayed to the request time)."""

    recent_transitions: list[Transition] = Field(description="newest first")


class TopLead(BaseModel):
    model_config = ConfigDict(frozen=True)

    lead_id: str
    stage: Stage
    fit_score: float
    engagement_score: float = Field(description="decayed to the request time")


class TopLeads(BaseModel):
    """GET /leads/top?stage=...: the hottest leads of a stage, by engagement."""

    model_config = ConfigDict(frozen=True)

    stage: Stage
    leads: list[TopLead]


class WaitingLead(BaseModel):
    model_config = ConfigDict(frozen=True)

    lead_id: str
    status: Literal["on_time", "breached", "escalated"] = Field(
        description="at the request time: before due_at, after it, after escalate_at"
    )
    qualified_at: datetime = Field(description="event time of the change to sql")
    due_at: datetime = Field(description="when the SLA runs out (working time counted)")
    escalate_at: datetime | None = Field(description="null without escalate_after_hours")
    seconds_left: float = Field(description="until due_at, wall clock; negative: overdue")
    sql_transition_id: str
    fit_score: float
    engagement_score: float = Field(description="decayed to the request time")


class WaitingForSales(BaseModel):
    """GET /sales/waiting: the SQLs no rep has acted on yet, due first, across all workers."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    sla_hours: float | None = Field(description="null: the rules have no sales section")
    business_hours: str | None = Field(
        description="e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin'; null: SLA time is all time"
    )
    waiting: int = Field(description="SQLs waiting, on time or not")
    overdue: int = Field(description="of which past due_at")
    leads: list[WaitingLead] = Field(description="the first `limit`, most overdue first")


class RecentTransitions(BaseModel):
    """GET /transitions/recent: the latest transitions of all leads, newest first."""

    model_config = ConfigDict(frozen=True)

    transitions: list[Transition]


class ApiError(BaseModel):
    """Any 4xx answer."""

    model_config = ConfigDict(frozen=True)

    error: str
    lead_id: str | None = None


__all__ = [
    "ApiError",
    "FunnelView",
    "LeadView",
    "RecentTransitions",
    "TopLead",
    "TopLeads",
    "WaitingForSales",
    "WaitingLead",
]
