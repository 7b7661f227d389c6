"""What leadscore publishes: transitions, score snapshots and sales alerts.

These models are the topic contracts; `scoring.schemas` generates their JSON
Schemas for consumers in any language.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from scoring.messages import Framework
from scoring.state import Stage

# Transition ids are UUIDv5 in this namespace: the same inputs give the same id.
TRANSITION_NAMESPACE = uuid.UUID("6f1c3f0e-9a55-4d2b-8a57-2f0e0c4a6b1d")
TOP_RULES = 5


class _Output(BaseModel):
    model_config = ConfigDict(frozen=True)


class RulePoints(_Output):
    """One rule's share of a score: fit points, or engagement points decayed to the moment."""

    rule_id: str
    kind: Literal["fit", "engagement"]
    points: float


class CriteriaState(_Output):
    """Where the lead stands on the qualification framework that confirms an SQL."""

    framework: Framework
    met: list[str]
    unmet: list[str]
    unknown: list[str] = Field(description="criteria sales has not answered yet")
    require: int
    ready: bool


class Explanation(_Output):
    fit: list[RulePoints]
    engagement: list[RulePoints]
    disqualified_by: str | None = Field(
        description="'sales' or the disqualifying fit rules; null unless disqualified"
    )
    criteria: CriteriaState


class Transition(_Output):
    """One stage change of one lead: the value on the `lead-transitions` topic."""

    transition_id: str = Field(
        description="UUIDv5 of lead, stages and trigger: a replay yields the same id"
    )
    lead_id: str
    from_stage: Stage
    to_stage: Stage
    occurred_at: datetime = Field(description="event time of the change")
    trigger: Literal["message", "decay", "rules"] = Field(
        description="a message; decay (a crossing with no message); or new rules, brought to "
        "a lead that had no message since they came (the worker's rules sweep)"
    )
    message_id: str | None = Field(description="the triggering message; null for decay and rules")
    reason: str
    fit_score: float
    engagement_score: float
    top_rules: list[RulePoints]
    criteria: CriteriaState
    rules_version: str


class ScoreSnapshot(_Output):
    """A lead's scores as of a moment: the value on the compacted `lead-scores` topic."""

    lead_id: str
    stage: Stage
    as_of: datetime
    fit_score: float
    engagement_score: float
    explanation: Explanation
    rules_version: str = Field(
        description="the rules the scores come from: the version in use, or 'before <version>' "
        "for a lead not brought to the rules in use yet (its next message, or the rules sweep, "
        "brings it)"
    )
    absorbed_ids: list[str] = Field(
        default_factory=list, description="the ids of the leads merged into this one"
    )


class LeadMerge(_Output):
    """A lead absorbed into another of the same person: the value on `lead-merges`."""

    merge_id: str = Field(description="UUIDv5 of both ids and the message: a replay yields it")
    merged_id: str = Field(description="the lead that ends (a tombstone follows on lead-scores)")
    survivor_id: str
    via: Literal["anonymousId", "email", "alias"] = Field(
        description="what linked them: a message carrying both ids, an identify's email, "
        "or an alias"
    )
    message_id: str = Field(description="the message that linked the two")
    occurred_at: datetime = Field(description="event time of that message")


class LeadDeletion(_Output):
    """A lead forgotten on a `delete` request: the value on `lead-deletions`."""

    deletion_id: str
    lead_id: str
    absorbed_ids: list[str] = Field(description="ids merged into it, forgotten with it")
    message_id: str
    occurred_at: datetime = Field(description="event time of the delete request")


class SalesAlert(_Output):
    """A lead that became sales qualified: a value on the `sales-alerts` topic."""

    kind: Literal["sql"] = "sql"
    transition_id: str
    lead_id: str
    occurred_at: datetime
    summary: str = Field(description="one or two human-readable lines for the rep")
    transition: Transition


FollowUpKind = Literal["sla_met", "sla_breach", "sla_escalation", "sla_acted_late"]


class FollowUp(_Output):
    """A step of the sales follow-up of an SQL: a value on the `sales-alerts` topic.

    `sla_breach` when the SLA runs out before a rep acted, `sla_escalation` when
    `escalate_after_hours` more have passed, `sla_met` when a rep acted in time,
    `sla_acted_late` when one acted after the breach.
    """

    kind: FollowUpKind
    alert_id: str = Field(description="UUIDv5 of kind, lead and handoff: replay gives the same")
    lead_id: str
    occurred_at: datetime = Field(
        description="event time: the breach or escalation instant, or the rep's action"
    )
    qualified_at: datetime = Field(description="event time of the change to sql")
    due_at: datetime = Field(description="when the SLA runs out")
    sql_transition_id: str = Field(description="the change to sql this follows up")
    working_hours: float = Field(description="SLA time (working hours) from sql to occurred_at")
    hours_overdue: float = Field(description="working hours past due_at at occurred_at")
    action: str | None = Field(description="an act (met, late): the event; else null")
    message_id: str | None = Field(description="an act (met, late): its message; else null")
    stage: Stage
    fit_score: float
    engagement_score: float = Field(description="as of occurred_at")
    summary: str = Field(description="one or two human-readable lines for the rep's manager")
    rules_version: str


# A value on `sales-alerts`: told apart by `kind`.
SALES_ALERT_ADAPTER: TypeAdapter[SalesAlert | FollowUp] = TypeAdapter(
    Annotated[SalesAlert | FollowUp, Field(discriminator="kind")]
)


def follow_up_id(kind: str, lead_id: str, sql_transition_id: str) -> str:
    name = "\x1f".join(("follow-up", kind, lead_id, sql_transition_id))
    return str(uuid.uuid5(TRANSITION_NAMESPACE, name))


def merge_id(merged_id: str, survivor_id: str, message_id: str) -> str:
    return str(
        uuid.uuid5(TRANSITION_NAMESPACE, "\x1f".join(("merge", merged_id, survivor_id, message_id)))
    )


def deletion_id(lead_id: str, message_id: str) -> str:
    return str(uuid.uuid5(TRANSITION_NAMESPACE, "\x1f".join(("delete", lead_id, message_id))))


def transition_id(lead_id: str, from_stage: Stage, to_stage: Stage, trigger_key: str) -> str:
    """Deterministic id: the trigger is `message:<messageId>` or `decay:<crossing instant>`."""
    name = "\x1f".join((lead_id, from_stage, to_stage, trigger_key))
    return str(uuid.uuid5(TRANSITION_NAMESPACE, name))


def sales_alert(transition: Transition) -> SalesAlert:
    """The alert for a change to sql, with a summary a rep can read at a glance."""
    top = (
        ", ".join(f"{rule.rule_id} ({rule.points:+g})" for rule in transition.top_rules[:3])
        or "no scored signals"
    )
    criteria = transition.criteria
    met = ", ".join(criteria.met) or "none yet"
    summary = (
        f"Lead {transition.lead_id} is sales qualified: {transition.reason}. "
        f"Fit {transition.fit_score:.0f}, engagement {transition.engagement_score:.0f}; "
        f"top signals: {top}. {criteria.framework} met: {met}."
    )
    return SalesAlert(
        transition_id=transition.transition_id,
        lead_id=transition.lead_id,
        occurred_at=transition.occurred_at,
        summary=summary,
        transition=transition,
    )


class DeadLetter(_Output):
    """Input that could not be used: the value on the `lead-events-dlq` topic.

    The original bytes travel base64-encoded, so nothing is lost whatever they were.
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    source_item: int | None = Field(
        None, description="the rejected item's index, when the record is a batch body"
    )
    original_key: bytes | None
    original_value: bytes | None
    rejected_at: datetime = Field(description="wall-clock time of the rejection")
