"""Scoring semantics: fit (DESIGN.md, "Scoring semantics").

The rules, messages and hand arithmetic are in tests/unit/semantics.py."""

from __future__ import annotations

import scoring
from scoring import Stage
from tests.unit.semantics import (
    RULES,
    apply_all,
    epoch,
    good_fit,
    group,
    identify,
)

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
