"""Stages: decay crossings, computed, not polled (DESIGN.md, "Scoring semantics").

The rules, messages and hand arithmetic are in tests/unit/semantics.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

import scoring
from scoring import Stage, Transition
from scoring.replay import BadLine, Replay
from tests.unit.semantics import (
    EXIT_LINE,
    HALF_LIFE_DAYS,
    LEAD,
    RULES,
    apply_all,
    crossing_after,
    demo,
    epoch,
    good_fit,
    moment,
    moves,
    mql_lead,
    neutral,
    page,
)

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
