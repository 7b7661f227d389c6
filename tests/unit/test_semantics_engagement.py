"""Scoring semantics: engagement (DESIGN.md, "Scoring semantics").

The rules, messages and hand arithmetic are in tests/unit/semantics.py."""

from __future__ import annotations

import pytest

import scoring
from scoring import Stage
from tests.unit.semantics import (
    HALF_LIFE_DAYS,
    LEAD,
    NO_DECAY,
    RULES,
    apply_all,
    crossing_after,
    demo,
    email_open,
    engagement_at,
    epoch,
    good_fit,
    make_rules,
    message,
    moment,
    moves,
    mql_lead,
    neutral,
    page,
    track,
    unsubscribe,
)

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
