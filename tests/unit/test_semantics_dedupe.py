"""Dedupe, determinism and state encoding (DESIGN.md, "Scoring semantics").

The rules, messages and hand arithmetic are in tests/unit/semantics.py."""

from __future__ import annotations

import scoring
from scoring import Stage
from scoring.replay import Replay
from tests.unit.semantics import (
    BANT_READY,
    LEAD,
    NO_DECAY,
    RULES,
    accepted,
    apply_all,
    demo,
    email_open,
    engagement_at,
    epoch,
    fit_lead,
    good_fit,
    identify,
    moves,
    mql_lead,
    neutral,
    page,
    qualification,
    recycled,
    rejected,
    track,
    unsubscribe,
)

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
