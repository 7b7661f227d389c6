"""The shapes of the web API's answers (GET /leads/..., /funnel, /transitions/recent).

Generated into JSON Schemas with the topic contracts (`scoring.schemas`).
"""

from __future__ import annotations

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


class RecentTransitions(BaseModel):
    """GET /transitions/recent: the latest transitions of all leads, newest first."""

    model_config = ConfigDict(frozen=True)

    transitions: list[Transition]


class ApiError(BaseModel):
    """Any 4xx answer."""

    model_config = ConfigDict(frozen=True)

    error: str
    lead_id: str | None = None


__all__ = ["ApiError", "FunnelView", "LeadView", "RecentTransitions", "TopLead", "TopLeads"]
