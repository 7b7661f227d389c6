"""Stages: disqualification and thresholds (DESIGN.md, "Scoring semantics").

The rules, messages and hand arithmetic are in tests/unit/semantics.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

import scoring
from scoring import Stage
from tests.unit.semantics import (
    BANT_READY,
    BLOCKED_COUNTRY,
    LEAD,
    RULES,
    T0,
    accepted,
    apply_all,
    demo,
    email_open,
    engagement_at,
    epoch,
    fit_lead,
    good_fit,
    group,
    identify,
    in_stage,
    make_rules,
    moment,
    moves,
    mql_lead,
    neutral,
    page,
    qualification,
    recycled,
    rejected,
    sql_lead,
    unsubscribe,
)

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
