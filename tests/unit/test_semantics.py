"""Unit tests of the scoring semantics, written from DESIGN.md (not from the code).

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

import pytest

import scoring
from scoring import LeadState, Rejection, Stage, Transition
from scoring.replay import BadLine, Replay

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


# ==========================================================================
# Input: parsing and validation
# ==========================================================================


def test_valid_messages_of_every_known_type_are_accepted() -> None:
    raws = [
        track("m1", "Something No Rule Knows"),
        page("m2", "/blog/post"),
        message("screen", "m3", 0.0, LEAD, name="Dashboard", properties={}),
        identify("m4", {"title": "CTO"}),
        group("m5", {"employee_count": 10}),
        message("alias", "m6", 0.0, LEAD, previousId="anon-1"),
    ]
    for raw in raws:
        parsed = scoring.parse_message(raw)
        assert not isinstance(parsed, Rejection), (raw, parsed)
        assert parsed.lead_id == LEAD
        assert parsed.timestamp == T0 and parsed.timestamp.utcoffset() is not None
    # Valid messages that no rule matches change nothing.
    state, transitions = apply_all(raws)
    assert transitions == [] and state.stage == Stage.LEAD


def _without(field: str) -> str:
    body = json.loads(demo("m1"))
    del body[field]
    return json.dumps(body)


INVALID_INPUTS = {
    "not JSON": ("{this is not json", ("json", "invalid", "parse")),
    "not an object (array)": ('[{"type": "track"}]', ("object", "dict", "mapping")),
    "not an object (number)": ("42", ("object", "dict", "mapping")),
    "missing timestamp": (_without("timestamp"), ("timestamp",)),
    "timestamp as epoch number out of range": (
        demo("m1").replace('"2026-11-01T09:00:00+00:00"', "-5"),
        ("timestamp", "epoch"),
    ),
    "timestamp not a date": (
        demo("m1").replace("2026-11-01T09:00:00+00:00", "yesterday"),
        ("timestamp",),
    ),
    "unknown type": (message("launch", "m1", 0.0, LEAD), ("type",)),
    "missing type": (_without("type"), ("type",)),
    "missing userId and anonymousId": (track("m1", "Demo Requested", user=None), ("id",)),
    "Qualification Updated with an unknown framework": (
        qualification("m1", {"budget": True}, framework="MEDDIC"),
        ("framework",),
    ),
    "Qualification Updated with non-boolean criteria": (
        qualification("m1", {"budget": "yes"}),
        ("budget", "criteria"),
    ),
}


@pytest.mark.parametrize(
    ("raw", "words"), list(INVALID_INPUTS.values()), ids=list(INVALID_INPUTS.keys())
)
def test_invalid_input_is_rejected_with_a_clear_reason(raw: str, words: tuple[str, ...]) -> None:
    parsed = scoring.parse_message(raw)
    assert isinstance(parsed, Rejection), parsed
    assert parsed.reason.strip()
    assert any(word in parsed.reason.lower() for word in words), parsed.reason


def test_invalid_bytes_are_rejected_not_raised() -> None:
    parsed = scoring.parse_message(b"\xff\xfe not utf-8 json")
    assert isinstance(parsed, Rejection) and parsed.reason.strip()


def test_anonymous_id_is_accepted_as_the_lead_id() -> None:
    raw = track("anon-m1", "Demo Requested", user=None, anonymousId="visitor-42")
    parsed = parse(raw)
    assert parsed.lead_id == "visitor-42"
    state, transitions = scoring.apply_message(None, parsed, RULES)
    assert transitions == []
    assert scoring.snapshot(state, RULES).engagement_score == 40.0
    assert scoring.snapshot(state, RULES).lead_id == "visitor-42"


def test_null_user_id_with_anonymous_id_is_accepted() -> None:
    # Segment sends "userId": null for visitors not yet known.
    parsed = parse(track("m1", "Demo Requested", user=None, userId=None, anonymousId="v-7"))
    assert parsed.lead_id == "v-7"


def test_empty_user_id_without_anonymous_id_is_rejected() -> None:
    parsed = scoring.parse_message(track("m1", "Demo Requested", user=""))
    assert isinstance(parsed, Rejection), parsed


def test_timestamp_with_z_designator_is_accepted() -> None:
    raw = demo("m1").replace("2026-11-01T09:00:00+00:00", "2026-11-01T09:00:00Z")
    assert parse(raw).timestamp.timestamp() == epoch(0.0)


def test_user_id_wins_over_anonymous_id() -> None:
    parsed = parse(track("m1", "Demo Requested", anonymousId="visitor-42"))
    assert parsed.lead_id == LEAD


def test_timestamp_with_non_utc_offset_is_the_same_instant() -> None:
    raw = demo("m1").replace("2026-11-01T09:00:00+00:00", "2026-11-01T10:30:00+01:30")
    assert parse(raw).timestamp.timestamp() == epoch(0.0)


# ==========================================================================
# Scoring semantics: engagement
# ==========================================================================


def test_decay_halves_engagement_every_half_life() -> None:
    state, _ = apply_all([demo("m1", 0.0)])
    assert engagement_at(state, 0) == 40.0
    assert engagement_at(state, 10) == 20.0
    assert engagement_at(state, 20) == 10.0
    assert engagement_at(state, 30) == 5.0
    # Half a half-life: 40 * 0.5 ** 0.5 = 28.2842712..., rounded to 3 decimals.
    assert engagement_at(state, 5) == 28.284


def test_decay_sums_firings_each_from_its_own_time() -> None:
    state, _ = apply_all([demo("m1", 0.0), page("m2", "/pricing", 10.0)])
    # 40 * 0.5 ** 2 + 20 * 0.5 ** 1 = 10 + 10
    assert engagement_at(state, 20) == 20.0


def test_no_decay_without_half_life_days() -> None:
    state, _ = apply_all([demo("m1", 0.0)], rules=NO_DECAY)
    assert engagement_at(state, 0, NO_DECAY) == 40.0
    assert engagement_at(state, 365, NO_DECAY) == 40.0
    assert engagement_at(state, 3650, NO_DECAY) == 40.0


def test_no_decay_demotion_without_half_life_days() -> None:
    state, transitions = apply_all([*good_fit(), demo("m1", 0.0)], rules=NO_DECAY)
    assert moves(transitions) == [("lead", "mql")]
    assert scoring.next_crossing(state, NO_DECAY) is None
    later, demotions = scoring.advance(state, epoch(3650), NO_DECAY)
    assert demotions == [] and later.stage == Stage.MQL


def test_limit_counts_at_most_count_firings_in_the_window() -> None:
    opens = [email_open(f"open-{day}", day) for day in (0, 1, 2, 3, 6)]
    state, _ = apply_all(opens, rules=NO_DECAY)
    # Only the opens of day 0 and day 1 count: 2 x 5.
    assert engagement_at(state, 6, NO_DECAY) == 10.0


def test_limit_window_includes_its_start() -> None:
    # The open at day 7 finds counted firings at day 0 and 1 in [0, 7]: not counted.
    state, _ = apply_all([email_open(f"open-{d}", d) for d in (0, 1, 7)], rules=NO_DECAY)
    assert engagement_at(state, 7, NO_DECAY) == 10.0


def test_limit_counts_again_after_the_window() -> None:
    days = (0, 1, 7.5, 8.5, 9)
    state, _ = apply_all([email_open(f"open-{d}", d) for d in days], rules=NO_DECAY)
    # 7.5: [0.5, 7.5] holds only day 1 -> counted; 8.5: [1.5, 8.5] holds 7.5 -> counted;
    # 9: [2, 9] holds 7.5 and 8.5 -> not counted. Counted: 0, 1, 7.5, 8.5.
    assert engagement_at(state, 9, NO_DECAY) == 20.0


def test_uncounted_firings_do_not_use_up_the_limit() -> None:
    days = (0, 1, 2, 6, 7.5)
    state, _ = apply_all([email_open(f"open-{d}", d) for d in days], rules=NO_DECAY)
    # 2 and 6 are not counted. At 7.5 the window [0.5, 7.5] holds one *counted*
    # firing (day 1), so 7.5 counts: 0, 1, 7.5 -> 15. (Were the uncounted ones
    # kept, 1, 2 and 6 would fill the window and the total would stay 10.)
    assert engagement_at(state, 7.5, NO_DECAY) == 15.0


def test_limit_window_of_a_late_firing_looks_back_from_its_own_time() -> None:
    # Opens at day 5 and 6 are counted; a late open of day 5.5 finds only day 5
    # in [-1.5, 5.5] (day 6 lies after it) and counts.
    raws = [email_open("o5", 5), email_open("o6", 6), email_open("o55", 5.5)]
    state, _ = apply_all(raws, rules=NO_DECAY)
    assert engagement_at(state, 6, NO_DECAY) == 15.0
    # A late open of day 5.2: day 5.5 and 6 lie after it, only day 5 is in its window.
    state, _ = apply_all([email_open("o52", 5.2)], state, rules=NO_DECAY)
    assert engagement_at(state, 6, NO_DECAY) == 20.0
    # A late open of day 5.8 finds day 5, 5.2 and 5.5 counted in its window: not counted.
    state, _ = apply_all([email_open("o58", 5.8)], state, rules=NO_DECAY)
    assert engagement_at(state, 6, NO_DECAY) == 20.0


def test_a_limited_firing_older_than_the_kept_history_is_not_counted() -> None:
    # Bounded state (scoring.state): limit history reaches two windows behind the
    # lead's clock. A backfill of opens from day 0, 1, 2 after one of day 100 has
    # windows reaching past it, so they are not counted: the limit is never exceeded.
    # (With unbounded history, day 0 and 1 would count and the total be 15.)
    raws = [email_open("o100", 100), email_open("o0", 0), email_open("o1", 1), email_open("o2", 2)]
    state, _ = apply_all(raws, rules=NO_DECAY)
    assert engagement_at(state, 100, NO_DECAY) == 5.0


def test_limit_history_is_capped_and_what_it_drops_is_never_recounted() -> None:
    # Opens arriving newest first, 0.1 day apart (days 13.0 .. 12.1), each find no
    # counted firing at or before their own time, so they count, until the history
    # cap (LIMIT_HISTORY x count = 8 times) drops the oldest kept (12.2): from then
    # on a window reaching back to it is not counted. 8 counted, plus 12.2 = 45.
    raws = [email_open(f"o{i}", 13 - i / 10) for i in range(10)]
    state, _ = apply_all(raws, rules=NO_DECAY)
    assert engagement_at(state, 13, NO_DECAY) == 45.0
    assert len(state.firings["email-open"]) == 8
    # An open of day 12.25 has the dropped 12.2 in its window: not counted.
    state, _ = apply_all([email_open("late", 12.25)], state, rules=NO_DECAY)
    assert engagement_at(state, 13, NO_DECAY) == 45.0


def test_limit_uses_event_time_with_decay() -> None:
    state, _ = apply_all([email_open(f"open-{d}", d) for d in (0, 1, 2)])
    # Counted: day 0 and day 1. At day 10: 5 * 0.5 + 5 * 0.5 ** 0.9
    expected = 5 * 0.5 + 5 * 0.5**0.9
    assert engagement_at(state, 10) == round(expected, 3)


def test_negative_points_lower_engagement() -> None:
    state, _ = apply_all([demo("m1", 0.0), unsubscribe("m2", 0.0)])
    assert engagement_at(state, 0) == 10.0
    # The negative firing decays too: (40 - 30) * 0.5 after one half-life.
    assert engagement_at(state, 10) == 5.0


def test_negative_points_can_make_engagement_negative() -> None:
    state, _ = apply_all([unsubscribe("m1", 0.0)])
    assert engagement_at(state, 0) == -30.0
    assert engagement_at(state, 10) == -15.0


def test_each_message_fires_each_matching_rule_at_most_once() -> None:
    extra = """
    - id: any-page
      type: page
      points: 1
    - id: pricing-url
      type: page
      where:
        properties.url: {contains: "pricing"}
      points: 3
"""
    rules = make_rules(extra_engagement=extra)
    # /pricing/enterprise matches pricing-page, any-page and pricing-url: each once.
    state, _ = apply_all([page("m1", "/pricing/enterprise", 0.0)], rules=rules)
    snap = scoring.snapshot(state, rules, epoch(0))
    assert snap.engagement_score == 24.0
    points = sorted((r.rule_id, r.points) for r in snap.explanation.engagement)
    assert points == [("any-page", 1.0), ("pricing-page", 20.0), ("pricing-url", 3.0)]


def test_rules_match_on_message_type_and_event_name() -> None:
    state, _ = apply_all(
        [
            message("page", "m1", 0.0, LEAD, name="Demo Requested", properties={}),
            message("screen", "m2", 0.0, LEAD, name="Demo Requested", properties={}),
            track("m3", "Pricing", properties={"path": "/pricing"}),  # not a page
            track("m4", "demo requested"),  # event names are exact
            page("m5", "/blog/pricing"),  # starts_with, not contains
        ]
    )
    assert engagement_at(state, 0) == 0.0


def test_a_late_message_counts_its_points_decayed_from_its_own_time() -> None:
    # The pricing visit at day 2 is applied first; the demo of day 0 arrives late.
    state, transitions = apply_all([*good_fit(), page("m1", "/pricing", 2.0)])
    assert transitions == []
    state, transitions = apply_all([demo("late-demo", 0.0)], state)
    expected = 20 + 40 * 0.5 ** (2 / HALF_LIFE_DAYS)  # 54.822...
    assert scoring.snapshot(state, RULES, epoch(2)).engagement_score == round(expected, 3)
    # The clock never goes back, and the stage is evaluated at the latest event time.
    assert state.clock == epoch(2)
    assert moves(transitions) == [("lead", "mql")]
    assert transitions[0].occurred_at == moment(2)
    assert transitions[0].engagement_score == pytest.approx(expected, abs=1e-3)


def test_a_late_message_after_a_decay_demotion_does_not_rewrite_history() -> None:
    state, transitions = apply_all([neutral("m1", 6.0)], mql_lead())
    assert moves(transitions) == [("mql", "lead")]  # decay at day 4.15
    # A demo of day 2 arrives late: at day 6, 40 * 0.5 ** 0.6 + 40 * 0.5 ** 0.4 = 56.7.
    state, transitions = apply_all([demo("late", 2.0)], state)
    assert moves(transitions) == [("lead", "mql")]
    assert transitions[0].trigger == "message" and transitions[0].occurred_at == moment(6)


def test_next_crossing_after_a_late_message_counts_its_firing() -> None:
    state, _ = apply_all([neutral("m1", 2.0), page("late", "/pricing", 1.0)], mql_lead())
    assert state.clock == epoch(2) and state.stage == Stage.MQL
    e2 = 40 * 0.5 ** (2 / HALF_LIFE_DAYS) + 20 * 0.5 ** (1 / HALF_LIFE_DAYS)
    assert scoring.next_crossing(state, RULES) == pytest.approx(crossing_after(e2, 2.0), abs=1e-3)


def test_a_late_message_is_evaluated_at_the_latest_time_not_its_own() -> None:
    # Demo at day 0 would make engagement 40 at day 0, but at day 5 (the clock) it is
    # worth 40 * 0.5 ** 0.5 = 28.28 < 40: the lead must stay a lead.
    state, _ = apply_all([*good_fit(), neutral("m1", 5.0)])
    state, transitions = apply_all([demo("late-demo", 0.0)], state)
    assert transitions == []
    assert state.stage == Stage.LEAD
    assert state.clock == epoch(5)


# ==========================================================================
# Scoring semantics: fit
# ==========================================================================


def test_fit_comes_from_identify_traits_and_group_traits_under_company() -> None:
    state, _ = apply_all([identify("m1", {"title": "VP Marketing"}, 0.0)])
    assert state.fit_score == 20.0
    state, _ = apply_all([group("m2", {"employee_count": 120}, 0.0)], state)
    assert state.fit_score == 40.0
    snap = scoring.snapshot(state, RULES)
    assert snap.fit_score == 40.0
    fit_points = sorted((r.rule_id, r.points) for r in snap.explanation.fit)
    assert fit_points == [("company-size", 20.0), ("vp", 20.0)]


def test_group_traits_are_not_read_as_top_level_traits() -> None:
    # employee_count on identify is not company.employee_count.
    state, _ = apply_all([identify("m1", {"employee_count": 500}, 0.0)])
    assert state.fit_score == 0.0


def test_traits_are_merged_across_messages() -> None:
    state, _ = apply_all(
        [
            identify("m1", {"title": "VP Sales"}, 0.0),
            identify("m2", {"email": "ann@buyer.example"}, 0.1),  # title is kept
            group("m3", {"employee_count": 120}, 0.2),
            group("m4", {"industry": "retail"}, 0.3),  # employee_count is kept
        ]
    )
    assert state.fit_score == 40.0


def test_last_write_per_trait_wins() -> None:
    state, _ = apply_all([*good_fit(0.0), identify("m1", {"title": "Engineer"}, 1.0)])
    assert state.fit_score == 20.0
    state, _ = apply_all([group("m2", {"employee_count": 10}, 2.0)], state)
    assert state.fit_score == 0.0
    state, _ = apply_all([identify("m3", {"title": "vp of it"}, 3.0)], state)
    assert state.fit_score == 20.0


def test_traits_of_unexpected_types_do_not_match_and_do_not_crash() -> None:
    state, transitions = apply_all(
        [
            identify("m1", {"title": None, "email": 42}, 0.0),
            group("m2", {"employee_count": "many"}, 0.0),
        ]
    )
    assert transitions == [] and state.fit_score == 0.0
    state, _ = apply_all([identify("m3", {"title": ["VP"]}, 0.1)], state)
    assert state.stage == Stage.LEAD


def test_fit_does_not_decay() -> None:
    state, _ = apply_all(good_fit(0.0))
    assert scoring.snapshot(state, RULES, epoch(0)).fit_score == 40.0
    assert scoring.snapshot(state, RULES, epoch(365)).fit_score == 40.0
    later, _ = scoring.advance(state, epoch(365), RULES)
    assert later.fit_score == 40.0


# ==========================================================================
# Stages: disqualification
# ==========================================================================


@pytest.mark.parametrize("start", ["lead", "mql", "sql"])
def test_a_matching_disqualify_rule_disqualifies_from_any_stage(start: str) -> None:
    state = in_stage(start)
    state, transitions = apply_all([identify("dq", {"email": "spy@rival.example"}, 0.5)], state)
    assert moves(transitions) == [(start, "disqualified")]
    assert transitions[0].trigger == "message" and transitions[0].message_id == "dq"
    assert state.stage == Stage.DISQUALIFIED
    snap = scoring.snapshot(state, RULES)
    assert snap.stage == Stage.DISQUALIFIED
    assert "competitor" in (snap.explanation.disqualified_by or "")


def test_disqualified_lead_is_not_promoted_by_engagement() -> None:
    state, _ = apply_all(
        [*good_fit(), identify("dq", {"email": "spy@rival.example"}, 0.0), demo("m1", 0.1)]
    )
    assert state.stage == Stage.DISQUALIFIED
    state, transitions = apply_all([accepted("acc", 0.2), page("p", "/pricing", 0.3)], state)
    assert transitions == [] and state.stage == Stage.DISQUALIFIED


def test_leaving_disqualified_when_traits_change_goes_to_lead() -> None:
    state, _ = apply_all([*good_fit(), identify("dq", {"email": "spy@rival.example"}, 0.0)])
    assert state.stage == Stage.DISQUALIFIED
    state, transitions = apply_all([identify("ok", {"email": "ann@buyer.example"}, 1.0)], state)
    assert moves(transitions) == [("disqualified", "lead")]
    assert state.stage == Stage.LEAD
    assert scoring.snapshot(state, RULES).explanation.disqualified_by is None


def test_leaving_disqualified_is_evaluated_against_thresholds_on_the_same_message() -> None:
    # mql with engagement 60, then disqualified by a competitor e-mail address.
    state, _ = apply_all(
        [
            *good_fit(),
            demo("m1", 0.0),
            page("m2", "/pricing", 0.0),
            identify("dq", {"email": "spy@rival.example"}, 0.0),
        ]
    )
    assert state.stage == Stage.DISQUALIFIED
    # The address changes: -> lead, and at once -> mql (fit 40, engagement ~60).
    state, transitions = apply_all([identify("ok", {"email": "ann@buyer.example"}, 0.1)], state)
    assert moves(transitions) == [("disqualified", "lead"), ("lead", "mql")]
    assert all(t.message_id == "ok" for t in transitions)
    assert state.stage == Stage.MQL


def test_stays_disqualified_while_another_disqualify_rule_still_matches() -> None:
    rules = make_rules(extra_fit=BLOCKED_COUNTRY)
    state, _ = apply_all(
        [identify("dq", {"email": "spy@rival.example", "country": "XX"}, 0.0)], rules=rules
    )
    assert state.stage == Stage.DISQUALIFIED
    state, transitions = apply_all(
        [identify("ok", {"email": "ann@buyer.example"}, 1.0)], state, rules=rules
    )
    assert transitions == [] and state.stage == Stage.DISQUALIFIED
    state, transitions = apply_all([identify("ok2", {"country": "DE"}, 2.0)], state, rules=rules)
    assert moves(transitions) == [("disqualified", "lead")]


def test_a_newly_matching_disqualify_rule_disqualifies_a_recycled_lead() -> None:
    rules = make_rules(extra_fit=BLOCKED_COUNTRY)
    state, _ = apply_all(
        [identify("dq", {"email": "spy@rival.example"}, 0.0), recycled("rec", 1.0)], rules=rules
    )
    assert state.stage == Stage.LEAD  # sales overrode the competitor rule
    state, transitions = apply_all([identify("c", {"country": "XX"}, 2.0)], state, rules=rules)
    assert moves(transitions) == [("lead", "disqualified")]


@pytest.mark.parametrize("start", ["lead", "mql", "sql"])
def test_lead_rejected_disqualifies_from_any_stage(start: str) -> None:
    state, transitions = apply_all([rejected("rej", 0.5)], in_stage(start))
    assert moves(transitions) == [(start, "disqualified")]
    assert transitions[0].message_id == "rej"
    assert scoring.snapshot(state, RULES).explanation.disqualified_by == "sales"


def test_sales_rejected_lead_does_not_leave_on_trait_changes() -> None:
    state, _ = apply_all([rejected("rej", 0.5)], mql_lead())
    state, transitions = apply_all(
        [identify("m1", {"title": "VP Ops", "email": "new@buyer.example"}, 1.0), demo("m2", 1.0)],
        state,
    )
    assert transitions == [] and state.stage == Stage.DISQUALIFIED


@pytest.mark.parametrize("start", ["mql", "sql", "disqualified"])
def test_lead_recycled_moves_to_lead_and_promotes_nothing_on_that_message(start: str) -> None:
    if start == "disqualified":
        state, _ = apply_all([rejected("rej", 0.0)], mql_lead())
    else:
        state = in_stage(start)
    # Fit 40 and engagement ~40: the thresholds hold, yet recycling promotes nothing.
    state, _ = apply_all([page("p", "/pricing", 0.0)], state)
    state, transitions = apply_all([recycled("rec", 0.0)], state)
    assert moves(transitions) == [(start, "lead")]
    assert transitions[0].message_id == "rec"
    assert state.stage == Stage.LEAD
    # The next message is evaluated against the thresholds again.
    state, transitions = apply_all([email_open("open", 0.0)], state)
    assert moves(transitions) == [("lead", "mql")]


def test_lead_recycled_on_a_lead_changes_nothing() -> None:
    state, transitions = apply_all([recycled("rec", 0.0)], fit_lead())
    assert transitions == [] and state.stage == Stage.LEAD


# ==========================================================================
# Stages: thresholds
# ==========================================================================


def test_lead_to_mql_when_fit_and_engagement_reach_the_thresholds() -> None:
    state, transitions = apply_all([*good_fit(), demo("m1", 0.0)])  # fit 40, engagement 40
    assert moves(transitions) == [("lead", "mql")]
    assert state.stage == Stage.MQL
    (t,) = transitions
    assert t.trigger == "message" and t.message_id == "m1"
    assert t.lead_id == LEAD
    assert t.occurred_at == T0 and t.occurred_at.utcoffset() == timedelta(0)
    assert t.fit_score == 40.0 and t.engagement_score == 40.0
    assert t.rules_version == "semantics-test-1"
    assert t.reason.strip()
    assert {r.rule_id for r in t.top_rules} >= {"demo"}
    assert t.criteria.framework == "BANT" and t.criteria.require == 3


def test_lead_stays_lead_with_engagement_below_min_engagement() -> None:
    # fit 40, engagement 20 + 5 + 5 = 30 < 40
    raws = [*good_fit(), page("m1", "/pricing"), email_open("m2"), email_open("m3")]
    state, transitions = apply_all(raws)
    assert transitions == [] and state.stage == Stage.LEAD


def test_lead_stays_lead_with_fit_below_min_fit() -> None:
    # fit 20 (vp only), engagement 60
    raws = [identify("m0", {"title": "VP"}), demo("m1"), page("m2", "/pricing")]
    state, transitions = apply_all(raws)
    assert transitions == [] and state.stage == Stage.LEAD


def test_mql_to_sql_when_require_criteria_are_met() -> None:
    state = mql_lead()
    state, transitions = apply_all(
        [qualification("q1", {"budget": True, "authority": True, "need": False}, 0.1)], state
    )
    assert transitions == [] and state.stage == Stage.MQL
    criteria = scoring.snapshot(state, RULES).explanation.criteria
    assert criteria.framework == "BANT" and criteria.require == 3
    assert sorted(criteria.met) == ["authority", "budget"]
    assert criteria.unmet == ["need"] and criteria.unknown == ["timeline"]
    assert criteria.ready is False
    state, transitions = apply_all([qualification("q2", {"timeline": True}, 0.2)], state)
    assert moves(transitions) == [("mql", "sql")]
    assert transitions[0].message_id == "q2"
    assert transitions[0].criteria.ready is True
    assert sorted(transitions[0].criteria.met) == ["authority", "budget", "timeline"]


def test_criteria_are_merged_per_criterion_latest_wins() -> None:
    state = mql_lead()
    state, transitions = apply_all(
        [
            qualification("q1", {"budget": True, "authority": True}, 0.1),
            qualification("q2", {"budget": False, "need": True}, 0.2),
        ],
        state,
    )
    # authority (kept from q1) and need are met; budget was overwritten: 2 < 3.
    assert transitions == [] and state.stage == Stage.MQL
    criteria = scoring.snapshot(state, RULES).explanation.criteria
    assert sorted(criteria.met) == ["authority", "need"]
    assert criteria.unmet == ["budget"]
    state, transitions = apply_all([qualification("q3", {"budget": True}, 0.3)], state)
    assert moves(transitions) == [("mql", "sql")]


def test_criteria_of_another_framework_do_not_count() -> None:
    state = mql_lead()
    props = {"challenges": True, "authority": True, "money": True, "prioritization": True}
    state, transitions = apply_all([qualification("q1", props, 0.1, framework="CHAMP")], state)
    assert transitions == [] and state.stage == Stage.MQL


def test_default_require_is_ceil_three_quarters_of_the_criteria() -> None:
    faint = make_rules(framework="FAINT")  # 5 criteria -> ceil(3.75) = 4
    state, _ = apply_all([*good_fit(), demo("m1", 0.0)], rules=faint)
    three = {"funds": True, "authority": True, "interest": True}
    state, transitions = apply_all(
        [qualification("q1", three, 0.1, framework="FAINT")], state, rules=faint
    )
    assert transitions == []
    assert scoring.snapshot(state, faint).explanation.criteria.require == 4
    state, transitions = apply_all(
        [qualification("q2", {"need": True}, 0.2, framework="FAINT")], state, rules=faint
    )
    assert moves(transitions) == [("mql", "sql")]


def test_criteria_met_on_a_lead_do_not_skip_mql() -> None:
    state, transitions = apply_all([qualification("q1", BANT_READY, 0.0)], fit_lead())
    assert transitions == [] and state.stage == Stage.LEAD


def test_lead_to_mql_to_sql_on_one_message_is_two_transitions_in_order() -> None:
    state, _ = apply_all([qualification("q1", BANT_READY, 0.0)], fit_lead())
    state, transitions = apply_all([demo("m1", 0.1)], state)
    assert moves(transitions) == [("lead", "mql"), ("mql", "sql")]
    assert [t.message_id for t in transitions] == ["m1", "m1"]
    assert all(t.occurred_at == moment(0.1) for t in transitions)
    assert transitions[0].transition_id != transitions[1].transition_id
    assert state.stage == Stage.SQL


def test_lead_accepted_on_a_lead_goes_straight_to_sql() -> None:
    # Fit 0, engagement 0: sales' word is enough.
    state, transitions = apply_all([accepted("acc", 0.0)])
    assert moves(transitions) == [("lead", "sql")]
    assert transitions[0].message_id == "acc"
    assert state.stage == Stage.SQL


def test_lead_accepted_on_an_mql_goes_to_sql() -> None:
    state, transitions = apply_all([accepted("acc", 0.1)], mql_lead())
    assert moves(transitions) == [("mql", "sql")]
    assert state.stage == Stage.SQL


@pytest.mark.parametrize("how", ["rejected", "competitor"])
def test_lead_accepted_is_ignored_on_a_disqualified_lead(how: str) -> None:
    dq = rejected("dq", 0.0) if how == "rejected" else identify("dq", {"email": "x@rival.example"})
    state, _ = apply_all([dq], mql_lead())
    assert state.stage == Stage.DISQUALIFIED
    state, transitions = apply_all([accepted("acc", 0.1)], state)
    assert transitions == [] and state.stage == Stage.DISQUALIFIED


def test_lead_accepted_is_ignored_on_an_sql_lead() -> None:
    state, transitions = apply_all([accepted("acc-2", 0.1)], sql_lead())
    assert transitions == [] and state.stage == Stage.SQL


def test_mql_exit_hysteresis_with_messages() -> None:
    # fit 40, engagement 40 + 20 = 60 at T0 -> mql
    state, _ = apply_all([*good_fit(), demo("m1", 0.0), page("m2", "/pricing", 0.0)])
    assert state.stage == Stage.MQL
    # -30 -> exactly 30: not below the exit line, stays mql (although < 40).
    state, transitions = apply_all([unsubscribe("m3", 0.0)], state)
    assert transitions == [] and state.stage == Stage.MQL
    assert engagement_at(state, 0) == 30.0
    # Another -30 -> 0 < 30: mql -> lead, on that message.
    state, transitions = apply_all([unsubscribe("m4", 0.0)], state)
    assert moves(transitions) == [("mql", "lead")]
    assert transitions[0].trigger == "message" and transitions[0].message_id == "m4"


def test_mql_exactly_on_the_exit_line_decays_out_at_once() -> None:
    # Engagement 40 + 20 - 30 = 30 at T0: on the line, still mql. Any time later
    # decay has taken it below the line: the crossing instant is T0 itself.
    state, _ = apply_all(
        [*good_fit(), demo("m1", 0.0), page("m2", "/pricing", 0.0), unsubscribe("m3", 0.0)]
    )
    assert state.stage == Stage.MQL
    later, transitions = scoring.advance(state, epoch(1.0), RULES)
    assert moves(transitions) == [("mql", "lead")]
    assert transitions[0].trigger == "decay"
    assert transitions[0].occurred_at.timestamp() == pytest.approx(epoch(0.0), abs=1e-3)
    assert later.stage == Stage.LEAD


def test_mql_exit_hysteresis_with_decay() -> None:
    state = mql_lead()  # engagement 40 at T0; crosses 30 at T0 + 4.15 days
    # Day 3: 40 * 0.5 ** 0.3 = 32.49, between the lines: stays mql.
    state, transitions = apply_all([neutral("m1", 3.0)], state)
    assert transitions == [] and state.stage == Stage.MQL
    later, demotions = scoring.advance(state, epoch(4.0), RULES)
    assert demotions == [] and later.stage == Stage.MQL


def test_mql_to_lead_when_fit_drops_below_min_fit() -> None:
    state, transitions = apply_all([identify("m1", {"title": "Engineer"}, 0.1)], mql_lead())
    assert moves(transitions) == [("mql", "lead")]
    assert transitions[0].trigger == "message" and transitions[0].message_id == "m1"
    assert transitions[0].fit_score == 20.0
    assert state.stage == Stage.LEAD


def test_sql_stays_sql() -> None:
    state = sql_lead()
    # No decay out.
    assert scoring.next_crossing(state, RULES) is None
    later, demotions = scoring.advance(state, epoch(365), RULES)
    assert demotions == [] and later.stage == Stage.SQL
    # No threshold demotion: fit and engagement collapse, criteria turn false.
    state, transitions = apply_all(
        [
            identify("m1", {"title": "Engineer"}, 100.0),
            group("m2", {"employee_count": 3}, 100.0),
            unsubscribe("m3", 100.0),
            qualification("q", {"budget": False, "authority": False, "need": False}, 100.0),
        ],
        state,
    )
    assert transitions == [] and state.stage == Stage.SQL


def test_disqualified_does_not_decay_out() -> None:
    state, _ = apply_all([rejected("rej", 0.0)], mql_lead())
    assert scoring.next_crossing(state, RULES) is None
    later, demotions = scoring.advance(state, epoch(365), RULES)
    assert demotions == [] and later.stage == Stage.DISQUALIFIED
    assert scoring.snapshot(later, RULES, epoch(365)).stage == Stage.DISQUALIFIED


def test_lead_has_no_decay_crossing() -> None:
    state, _ = apply_all([demo("m1", 0.0)])  # engagement 40 but fit 0: lead
    assert state.stage == Stage.LEAD
    assert scoring.next_crossing(state, RULES) is None
    _, transitions = scoring.advance(state, epoch(100), RULES)
    assert transitions == []


# ==========================================================================
# Stages: decay crossings (computed, not polled)
# ==========================================================================


def test_next_crossing_is_the_exact_instant() -> None:
    state = mql_lead()
    # 40 * 0.5 ** (dt / 10 d) = 30  ->  dt = 10 * log2(4 / 3) days = 4.150375 days
    assert scoring.next_crossing(state, RULES) == pytest.approx(crossing_after(40, 0), abs=1e-3)


def test_decay_crossing_between_two_messages_comes_first_at_the_crossing_instant() -> None:
    state = mql_lead()
    crossing = crossing_after(40, 0)
    # A demo at day 5 lifts engagement back to 28.28 + 40: mql again, after the demotion.
    state, transitions = apply_all([demo("m2", 5.0)], state)
    assert moves(transitions) == [("mql", "lead"), ("lead", "mql")]
    decay, promotion = transitions
    assert decay.trigger == "decay" and decay.message_id is None
    assert decay.occurred_at.timestamp() == pytest.approx(crossing, abs=1e-3)
    assert decay.occurred_at.utcoffset() == timedelta(0)
    assert decay.engagement_score == pytest.approx(EXIT_LINE, abs=1e-2)
    assert promotion.trigger == "message" and promotion.message_id == "m2"
    assert promotion.occurred_at == moment(5)
    assert state.stage == Stage.MQL


def test_decay_crossing_with_several_firings() -> None:
    # demo at day 0 and pricing at day 1: at day 1, E1 = 40 * 0.5 ** 0.1 + 20.
    state, _ = apply_all([page("m2", "/pricing", 1.0)], mql_lead())
    e1 = 40 * 0.5 ** (1 / HALF_LIFE_DAYS) + 20
    crossing = crossing_after(e1, 1.0)
    assert scoring.next_crossing(state, RULES) == pytest.approx(crossing, abs=1e-3)
    state, transitions = apply_all([neutral("m3", 30.0)], state)
    assert moves(transitions) == [("mql", "lead")]
    assert transitions[0].trigger == "decay"
    assert transitions[0].occurred_at.timestamp() == pytest.approx(crossing, abs=1e-3)


def test_decay_crossing_after_the_last_message_via_advance() -> None:
    state = mql_lead()
    crossing = crossing_after(40, 0)
    before, transitions = scoring.advance(state, epoch(4.0), RULES)
    assert transitions == [] and before.stage == Stage.MQL
    after, transitions = scoring.advance(before, epoch(10.0), RULES)
    assert moves(transitions) == [("mql", "lead")]
    (t,) = transitions
    assert t.trigger == "decay" and t.message_id is None
    assert t.occurred_at.timestamp() == pytest.approx(crossing, abs=1e-3)
    assert after.stage == Stage.LEAD
    assert scoring.next_crossing(after, RULES) is None
    # Emitted once: advancing further finds nothing more.
    _, again = scoring.advance(after, epoch(20.0), RULES)
    assert again == []


def test_decay_crossing_after_the_last_message_via_replay_finish() -> None:
    lines = [*good_fit(), demo("demo-0", 0.0)]
    replay = Replay(RULES, at=epoch(10.0))
    fed = list(replay.feed(lines))
    assert moves(t for t in fed if isinstance(t, Transition)) == [("lead", "mql")]
    leads, demotions = replay.finish()
    snapshots = list(leads)
    assert moves(demotions) == [("mql", "lead")]
    assert demotions[0].trigger == "decay"
    assert demotions[0].occurred_at.timestamp() == pytest.approx(crossing_after(40, 0), abs=1e-3)
    (snap,) = snapshots
    assert snap.lead_id == LEAD and snap.stage == Stage.LEAD
    assert snap.engagement_score == 20.0


def test_replay_before_the_crossing_has_no_demotion() -> None:
    replay = Replay(RULES, at=epoch(4.0))
    list(replay.feed([*good_fit(), demo("demo-0", 0.0)]))
    leads, demotions = replay.finish()
    snapshots = list(leads)
    assert demotions == [] and snapshots[0].stage == Stage.MQL


def test_replay_does_not_apply_messages_after_at_and_reports_bad_lines() -> None:
    lines = [*good_fit(), demo("demo-0", 0.0), "not json", page("p", "/pricing", 20.0)]
    replay = Replay(RULES, at=epoch(1.0))
    fed = list(replay.feed(lines))
    bad = [item for item in fed if isinstance(item, BadLine)]
    assert [b.line_number for b in bad] == [4] and bad[0].reason.strip()
    leads, _ = replay.finish()
    snapshots = list(leads)
    assert snapshots[0].engagement_score == round(40 * 0.5 ** (1 / HALF_LIFE_DAYS), 3)


def test_decay_transition_id_is_the_same_however_it_is_found() -> None:
    # 1. In the stream, between two messages.
    _, streamed = apply_all([demo("m2", 5.0)], mql_lead())
    in_stream = streamed[0]
    assert in_stream.trigger == "decay"
    # 2. By advance() after the last message.
    _, advanced = scoring.advance(mql_lead(), epoch(5.0), RULES)
    # 3. By replay --at.
    replay = Replay(RULES, at=epoch(7.0))
    list(replay.feed([*good_fit(), demo("demo-0", 0.0)]))
    _, finished = replay.finish()
    ids = {in_stream.transition_id, advanced[0].transition_id, finished[0].transition_id}
    assert len(ids) == 1
    assert in_stream.occurred_at == advanced[0].occurred_at == finished[0].occurred_at


# ==========================================================================
# Dedupe, determinism and state encoding
# ==========================================================================


def test_duplicate_message_id_is_ignored() -> None:
    state, transitions = apply_all([demo("m1", 0.0)], fit_lead())
    assert moves(transitions) == [("lead", "mql")]
    # The same messageId again (even with another body) changes nothing.
    state, transitions = apply_all(
        [demo("m1", 0.0), page("m1", "/pricing", 0.1), unsubscribe("m1", 0.1)], state
    )
    assert transitions == []
    assert engagement_at(state, 0.0) == 40.0
    assert state.clock == epoch(0.0)


def test_the_same_message_id_on_two_leads_is_not_a_duplicate() -> None:
    replay = Replay(RULES)
    list(replay.feed([demo("same", 0.0), track("same", "Demo Requested", user="lead-2")]))
    leads, _ = replay.finish()
    snapshots = list(leads)
    assert sorted((s.lead_id, s.engagement_score) for s in snapshots) == [
        (LEAD, 40.0),
        ("lead-2", 40.0),
    ]


def test_dedupe_remembers_the_last_dedupe_window_message_ids_of_a_lead() -> None:
    # Bounded state (scoring.state.DEDUPE_WINDOW = 64): a resend after 63 other
    # messages is ignored; one after 64 others is applied again.
    state, _ = apply_all([demo("m0", 0.0)], rules=NO_DECAY)
    others = [neutral(f"n{i}", 0.0) for i in range(63)]
    state, _ = apply_all([*others, demo("m0", 0.0)], state, rules=NO_DECAY)
    assert engagement_at(state, 0.0, NO_DECAY) == 40.0
    state, _ = apply_all([neutral("n63", 0.0), demo("m0", 0.0)], state, rules=NO_DECAY)
    assert engagement_at(state, 0.0, NO_DECAY) == 80.0


def test_duplicate_identify_is_ignored() -> None:
    state, _ = apply_all([*good_fit(), identify("fit-identify", {"title": "Engineer"}, 1.0)])
    assert state.fit_score == 40.0


def test_dedupe_survives_encode_and_decode() -> None:
    state, _ = apply_all([demo("m1", 0.0)], fit_lead())
    restored = scoring.decode_state(scoring.encode_state(state))
    assert restored.stage == state.stage and restored.clock == state.clock
    restored, transitions = apply_all([demo("m1", 0.0)], restored)
    assert transitions == [] and engagement_at(restored, 0.0) == 40.0


def test_encoded_state_scores_like_the_original() -> None:
    state = mql_lead()
    restored = scoring.decode_state(scoring.encode_state(state))
    tail = [page("p", "/pricing", 1.0), qualification("q", BANT_READY, 2.0), neutral("n", 50.0)]
    _, expected = apply_all(tail, state)
    _, actual = apply_all(tail, restored)
    assert expected == actual
    assert scoring.snapshot(restored, RULES, epoch(3)) == scoring.snapshot(state, RULES, epoch(3))


def test_transition_ids_are_deterministic() -> None:
    stream = [
        *good_fit(),
        demo("m1", 0.0),
        neutral("m2", 6.0),  # decay demotion at day 4.15
        demo("m3", 7.0),
        qualification("q", BANT_READY, 8.0),
        rejected("r", 9.0),
        recycled("c", 10.0),
    ]
    _, first = apply_all(stream)
    _, second = apply_all(stream)
    assert len(first) == 6
    assert [t.transition_id for t in first] == [t.transition_id for t in second]
    assert first == second
    assert len({t.transition_id for t in first}) == len(first)


def test_different_triggering_messages_give_different_ids() -> None:
    _, a = apply_all([demo("message-a", 0.0)], fit_lead())
    _, b = apply_all([demo("message-b", 0.0)], fit_lead())
    assert moves(a) == moves(b) == [("lead", "mql")]
    assert a[0].transition_id != b[0].transition_id


def test_different_leads_give_different_ids() -> None:
    _, a = apply_all([accepted("acc", 0.0)])
    other = track("acc", "Lead Accepted", user="lead-2")
    _, b = apply_all([other])
    assert a[0].lead_id == LEAD and b[0].lead_id == "lead-2"
    assert a[0].transition_id != b[0].transition_id


def test_every_stage_change_is_exactly_one_transition() -> None:
    stream = [
        *good_fit(),
        email_open("o1", 0.0),
        demo("m1", 0.0),  # lead -> mql
        email_open("o2", 0.1),
        page("p", "/pricing", 0.2),
        qualification("q", BANT_READY, 0.3),  # mql -> sql
        identify("i", {"title": "Engineer"}, 0.4),
        recycled("c", 0.5),  # sql -> lead
    ]
    state, transitions = apply_all(stream)
    assert moves(transitions) == [("lead", "mql"), ("mql", "sql"), ("sql", "lead")]
    assert [t.message_id for t in transitions] == ["m1", "q", "c"]
    assert state.stage == Stage.LEAD


def test_a_sales_rejection_stands_whatever_its_note_and_the_note_is_cut_to_a_line() -> None:
    note = "no budget\n" + "x" * 1_000_000
    state, transitions = apply_all([track("r1", "Lead Rejected", properties={"reason": note})])
    assert state.stage is Stage.DISQUALIFIED
    assert transitions[0].reason.startswith("rejected by sales: no budget x")
    assert len(transitions[0].reason) <= 220 and "\n" not in transitions[0].reason
