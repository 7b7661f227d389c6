"""What the scoring semantics tests share (tests/unit/test_semantics_*.py, one per section of
DESIGN.md), written from DESIGN.md (not from the code).

Every test uses the small explicit rules below, so that each expected number
can be computed by hand. Sections follow DESIGN.md: "Input", "Scoring
semantics" (engagement, fit, stages, decay crossings) and the transition
contract.

Hand arithmetic used throughout (RULES):
- half-life 10 days; demo 40, email-open 5 (at most 2 per rolling 7 days),
  pricing page 20, unsubscribe -30.
- fit: company.employee_count >= 50 -> 20, title matches "vp" -> 20, so a
  "VP" at a 120-person company has fit 40 (>= min_fit 30); either alone is 20.
- mql: fit >= 30 and engagement >= 40; exit line 40 - 10 = 30.
- BANT with the default require = ceil(0.75 * 4) = 3.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import scoring
from scoring import LeadState, Rejection, Stage, Transition

# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------

HALF_LIFE_DAYS = 10
EXIT_LINE = 30.0  # min_engagement 40 - mql_exit_margin 10

RULES_TEMPLATE = """
version: "semantics-test-1"
engagement:
{half_life}
  rules:
    - id: demo
      event: Demo Requested
      points: 40
    - id: email-open
      event: Email Opened
      points: 5
      limit: {{count: 2, per_days: 7}}
    - id: pricing-page
      type: page
      where:
        properties.path: {{starts_with: /pricing}}
      points: 20
    - id: unsubscribed
      event: Unsubscribed
      points: -30
{extra_engagement}
fit:
  rules:
{extra_fit}
    - id: company-size
      where: {{company.employee_count: {{gte: 50}}}}
      points: 20
    - id: vp
      where: {{title: {{matches: "(?i)\\\\bvp\\\\b"}}}}
      points: 20
    - id: competitor
      where: {{email: {{ends_with: "@rival.example"}}}}
      disqualify: true
qualification:
  framework: {framework}
stages:
  mql: {{min_fit: 30, min_engagement: 40}}
  mql_exit_margin: 10
"""


def make_rules(
    *,
    half_life: bool = True,
    extra_engagement: str = "",
    extra_fit: str = "",
    framework: str = "BANT",
) -> scoring.Rules:
    text = RULES_TEMPLATE.format(
        half_life=f"  half_life_days: {HALF_LIFE_DAYS}" if half_life else "",
        extra_engagement=extra_engagement,
        extra_fit=extra_fit,
        framework=framework,
    )
    return scoring.parse_rules(text)


RULES = make_rules()
NO_DECAY = make_rules(half_life=False)

BLOCKED_COUNTRY = """    - id: blocked-country
      where: {country: {eq: XX}}
      disqualify: true
"""

# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
DAY = 86_400.0


def moment(days: float = 0.0) -> datetime:
    return T0 + timedelta(days=days)


def iso(days: float = 0.0) -> str:
    """ISO-8601 with offset, e.g. "2026-11-01T09:00:00+00:00"."""
    return moment(days).isoformat()


def epoch(days: float = 0.0) -> float:
    return moment(days).timestamp()


def crossing_after(engagement: float, days: float) -> float:
    """Epoch of the instant E * 0.5^(dt/h) reaches the exit line, from `days`."""
    dt_days = HALF_LIFE_DAYS * math.log2(engagement / EXIT_LINE)
    return epoch(days) + dt_days * DAY


# --------------------------------------------------------------------------
# Messages (JSON strings in the Segment Spec shape)
# --------------------------------------------------------------------------

LEAD = "lead-1"


def message(type_: str, message_id: str, days: float, user: str | None, **fields: Any) -> str:
    body: dict[str, Any] = {"type": type_, "messageId": message_id, "timestamp": iso(days)}
    if user is not None:
        body["userId"] = user
    body.update(fields)
    return json.dumps(body)


def track(
    message_id: str,
    event: str,
    days: float = 0.0,
    *,
    user: str | None = LEAD,
    properties: dict[str, Any] | None = None,
    **fields: Any,
) -> str:
    return message(
        "track", message_id, days, user, event=event, properties=properties or {}, **fields
    )


def page(message_id: str, path: str, days: float = 0.0, *, user: str = LEAD) -> str:
    props = {"path": path, "url": f"https://www.example.com{path}"}
    return message("page", message_id, days, user, name=path, properties=props)


def identify(message_id: str, traits: dict[str, Any], days: float = 0.0) -> str:
    return message("identify", message_id, days, LEAD, traits=traits)


def group(message_id: str, traits: dict[str, Any], days: float = 0.0) -> str:
    return message("group", message_id, days, LEAD, groupId="acme", traits=traits)


def demo(message_id: str, days: float = 0.0) -> str:
    return track(message_id, "Demo Requested", days)


def email_open(message_id: str, days: float = 0.0) -> str:
    return track(message_id, "Email Opened", days)


def unsubscribe(message_id: str, days: float = 0.0) -> str:
    return track(message_id, "Unsubscribed", days)


def neutral(message_id: str, days: float = 0.0) -> str:
    """A valid message that no rule matches."""
    return track(message_id, "Help Article Viewed", days)


def qualification(
    message_id: str, criteria: dict[str, Any], days: float = 0.0, framework: str = "BANT"
) -> str:
    props = {"framework": framework, "criteria": criteria}
    return track(message_id, "Qualification Updated", days, properties=props)


def accepted(message_id: str, days: float = 0.0) -> str:
    return track(message_id, "Lead Accepted", days)


def rejected(message_id: str, days: float = 0.0) -> str:
    return track(message_id, "Lead Rejected", days, properties={"reason": "no budget"})


def recycled(message_id: str, days: float = 0.0) -> str:
    return track(message_id, "Lead Recycled", days)


def good_fit(days: float = -1.0) -> list[str]:
    """Identify + group that give fit 40 (vp 20 + company-size 20)."""
    return [
        identify("fit-identify", {"title": "VP Sales", "email": "ann@buyer.example"}, days),
        group("fit-group", {"name": "Acme", "employee_count": 120}, days),
    ]


BANT_READY = {"budget": True, "authority": True, "need": True}

# --------------------------------------------------------------------------
# Driving the core
# --------------------------------------------------------------------------


def parse(raw: str) -> scoring.Message:
    parsed = scoring.parse_message(raw)
    assert not isinstance(parsed, Rejection), parsed.reason
    return parsed


def apply_all(
    messages: Iterable[str], state: LeadState | None = None, rules: scoring.Rules = RULES
) -> tuple[LeadState, list[Transition]]:
    transitions: list[Transition] = []
    for raw in messages:
        state, new = scoring.apply_message(state, parse(raw), rules)
        transitions.extend(new)
    assert state is not None
    return state, transitions


def moves(transitions: Iterable[Transition]) -> list[tuple[str, str]]:
    return [(t.from_stage, t.to_stage) for t in transitions]


def engagement_at(state: LeadState, days: float, rules: scoring.Rules = RULES) -> float:
    return scoring.snapshot(state, rules, epoch(days)).engagement_score


def fit_lead() -> LeadState:
    """Stage lead, fit 40, no engagement."""
    state, transitions = apply_all(good_fit())
    assert state.stage == Stage.LEAD and transitions == []
    return state


def mql_lead() -> LeadState:
    """Stage mql since T0: fit 40, one demo (40 points) at T0."""
    state, transitions = apply_all([demo("demo-0", 0.0)], fit_lead())
    assert moves(transitions) == [("lead", "mql")]
    return state


def sql_lead() -> LeadState:
    """Stage sql since T0 (accepted by sales right after the demo)."""
    state, transitions = apply_all([accepted("accept-0", 0.0)], mql_lead())
    assert moves(transitions) == [("mql", "sql")]
    return state


def in_stage(stage: str) -> LeadState:
    return {"lead": fit_lead, "mql": mql_lead, "sql": sql_lead}[stage]()
