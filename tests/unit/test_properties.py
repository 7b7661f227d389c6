"""Properties of the core that must hold for any sequence of messages (hypothesis)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from scoring import (
    LeadState,
    Rejection,
    Rules,
    Stage,
    Transition,
    apply_message,
    bring_to_rules,
    decode_state,
    encode_state,
    parse_message,
    parse_rules,
    snapshot,
)
from scoring.engine import decay, snapshot_json
from scoring.replay import Replay
from scoring.rules import RulesFile

RULES_TEXT = """
version: "props"
engagement:
  half_life_days: {half_life}
  rules:
    - {{id: open, event: Email Opened, points: 5, limit: {{count: 2, per_days: 7}}}}
    - {{id: demo, event: Demo Requested, points: 40}}
    - {{id: unsub, event: Unsubscribed, points: -30}}
    - id: pricing
      type: page
      where: {{properties.path: {{starts_with: /pricing}}}}
      points: 20
      limit: {{count: 3, per_days: 2}}
fit:
  rules:
    - {{id: big, where: {{company.employees: {{gte: 50}}}}, points: 20}}
    - {{id: boss, where: {{title: {{matches: "(?i)\\\\bvp\\\\b"}}}}, points: 20}}
    - {{id: rival, where: {{email: {{ends_with: "@rival.example"}}}}, disqualify: true}}
stages:
  mql: {{min_fit: 30, min_engagement: 40}}
  mql_exit_margin: 10
"""
RULES = parse_rules(RULES_TEXT.format(half_life=3))
RULES_WITHOUT_DECAY = parse_rules(RULES_TEXT.format(half_life="null"))
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

TEMPLATES: list[dict[str, object]] = [
    {"type": "track", "event": "Email Opened"},
    {"type": "track", "event": "Demo Requested"},
    {"type": "track", "event": "Unsubscribed"},
    {"type": "page", "properties": {"path": "/pricing"}},
    {"type": "page", "properties": {"path": "/blog/a"}},
    {"type": "identify", "traits": {"title": "VP Sales", "email": "a@acme.example"}},
    {"type": "identify", "traits": {"email": "a@rival.example"}},
    {"type": "identify", "traits": {"email": "a@acme.example", "title": "Engineer"}},
    {"type": "group", "groupId": "g1", "traits": {"employees": 120}},
    {"type": "group", "groupId": "g2", "traits": {"employees": 5}},
    {"type": "track", "event": "Qualification Updated",
     "properties": {"framework": "BANT", "criteria": {"budget": True, "need": True}}},
    {"type": "track", "event": "Qualification Updated",
     "properties": {"framework": "BANT", "criteria": {"authority": True, "timeline": False}}},
    {"type": "track", "event": "Lead Accepted"},
    {"type": "track", "event": "Lead Rejected", "properties": {"reason": "no budget"}},
    {"type": "track", "event": "Lead Recycled"},
]  # fmt: skip

step = st.tuples(
    st.integers(0, 2),  # lead
    st.integers(0, len(TEMPLATES) - 1),  # what happens
    st.integers(0, 3 * 24 * 60),  # minutes since the previous message
    st.one_of(st.just(0), st.integers(0, 5 * 24 * 60)),  # minutes late (0: on time)
)


def build(steps: list[tuple[int, int, int, int]]) -> list[str]:
    lines, clock = [], START
    for index, (lead, template, gap, late) in enumerate(steps):
        clock += timedelta(minutes=gap)
        message = dict(TEMPLATES[template])
        message.update(
            messageId=f"m{index}",
            userId=f"lead-{lead}",
            timestamp=(clock - timedelta(minutes=late)).isoformat(),
        )
        lines.append(json.dumps(message))
    return lines


sequences = st.lists(step, min_size=1, max_size=60).map(build)


def replay(lines: list[str], rules: Rules = RULES) -> tuple[list[Transition], dict[str, LeadState]]:
    run = Replay(rules)
    transitions = [t for t in run.feed(lines) if isinstance(t, Transition)]
    return transitions, run.states


@given(sequences, st.data())
def test_duplicates_change_nothing(lines: list[str], data: st.DataObject) -> None:
    with_resends = list(lines)
    for _ in range(data.draw(st.integers(1, 5))):
        resent = lines[data.draw(st.integers(0, len(lines) - 1))]
        first_seen = with_resends.index(resent)
        with_resends.insert(data.draw(st.integers(first_seen + 1, len(with_resends))), resent)
    assert replay(with_resends) == replay(lines)


@given(sequences, st.data())
def test_replaying_in_two_steps_equals_one_replay(lines: list[str], data: st.DataObject) -> None:
    split = data.draw(st.integers(0, len(lines)))
    first = Replay(RULES)
    early = [t for t in first.feed(lines[:split]) if isinstance(t, Transition)]
    carried = {lead: decode_state(encode_state(state)) for lead, state in first.states.items()}
    second = Replay(RULES, states=carried, latest=first.latest)
    late = [t for t in second.feed(lines[split:]) if isinstance(t, Transition)]

    whole = Replay(RULES)
    transitions = [t for t in whole.feed(lines) if isinstance(t, Transition)]
    assert early + late == transitions
    assert second.states == whole.states
    (split_leads, split_demotions), (leads, demotions) = second.finish(), whole.finish()
    assert (list(split_leads), split_demotions) == (list(leads), demotions)


@given(sequences, st.floats(0, 60), st.floats(0, 60))
def test_decay_never_increases_engagement(lines: list[str], later: float, more: float) -> None:
    _, states = replay(lines)
    for state in states.values():
        assert state.clock is not None
        sooner = snapshot(state, RULES, state.clock + later * 86_400)
        after = snapshot(state, RULES, state.clock + (later + more) * 86_400)
        assert abs(after.engagement_score) <= abs(sooner.engagement_score)
        assert after.engagement_score * sooner.engagement_score >= 0
        before = {rule.rule_id: rule.points for rule in sooner.explanation.engagement}
        for rule in after.explanation.engagement:
            assert abs(rule.points) <= abs(before[rule.rule_id])


@given(sequences)
def test_limits_are_never_exceeded(lines: list[str]) -> None:
    limits = {
        rule.id: rule.limit
        for rule in RULES_WITHOUT_DECAY.spec.engagement.rules
        if rule.limit is not None
    }
    counted: dict[tuple[str, str], list[float]] = {}
    states: dict[str, LeadState] = {}
    for line in lines:
        message = parse_message(line)
        assert not hasattr(message, "reason")
        previous = states.get(message.lead_id)  # type: ignore[union-attr]
        state, _ = apply_message(previous, message, RULES_WITHOUT_DECAY)  # type: ignore[arg-type]
        states[state.lead_id] = state
        at = message.timestamp.timestamp()  # type: ignore[union-attr]
        for rule_id, limit in limits.items():
            before = previous.engagement.get(rule_id, 0.0) if previous else 0.0
            if state.engagement.get(rule_id, 0.0) == before:
                continue
            earlier = counted.setdefault((state.lead_id, rule_id), [])
            in_window = [t for t in earlier if at - limit.window <= t <= at]
            assert len(in_window) < limit.count
            earlier.append(at)


@given(sequences)
def test_in_order_firings_fill_no_window_beyond_its_limit(lines: list[str]) -> None:
    in_order = sorted(lines, key=lambda line: json.loads(line)["timestamp"])
    _, states = replay(in_order, RULES_WITHOUT_DECAY)
    for state in states.values():
        for rule_id, times in state.firings.items():
            limit = next(r.limit for r in RULES.spec.engagement.rules if r.id == rule_id)
            assert limit is not None
            for end in times:
                assert sum(1 for t in times if end - limit.window <= t <= end) <= limit.count


@given(sequences)
def test_transition_ids_are_unique_and_the_same_on_every_run(lines: list[str]) -> None:
    first, _ = replay(lines)
    second, _ = replay(lines)
    ids = [t.transition_id for t in first]
    assert ids == [t.transition_id for t in second]
    assert len(set(ids)) == len(ids)


def test_transition_ids_do_not_depend_on_the_process() -> None:
    lines = build([(0, 8, 0, 0), (0, 5, 1, 0), (0, 1, 1, 0), (0, 10, 60, 0), (0, 11, 60, 0)])
    script = (
        "import sys; from scoring.replay import Replay; from tests.unit.test_properties import "
        "RULES; print([t.transition_id for t in Replay(RULES).feed(sys.argv[1:])])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", script, *lines],
            env={"PYTHONHASHSEED": seed},
            cwd=Path(__file__).parents[2],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here, _ = replay(lines)
    assert [(t.from_stage, t.to_stage) for t in here] == [("lead", "mql"), ("mql", "sql")]
    assert runs == {str([t.transition_id for t in here])}


@given(sequences)
def test_the_fit_kept_between_trait_changes_is_the_fit_of_the_traits(lines: list[str]) -> None:
    """Trait messages re-evaluate only the fit rules that read a changed trait."""
    run = Replay(RULES)
    for line in lines:
        list(run.feed([line]))
        for state in run.states.values():
            matching = RULES.fit_rules_matching(state.traits)
            assert state.fit == {rule.id: rule.points for rule in matching if not rule.disqualify}
            assert state.disqualifiers == tuple(rule.id for rule in matching if rule.disqualify)


@given(sequences, st.one_of(st.none(), st.floats(0, 30)))
def test_the_fast_snapshot_json_is_the_models_json(lines: list[str], days: float | None) -> None:
    _, states = replay(lines)
    for state in states.values():
        assert state.clock is not None
        at = None if days is None else state.clock + days * 86_400
        model_json = snapshot(state, RULES, at).model_dump_json().encode()
        assert snapshot_json(state, RULES, at) == model_json


def _new_points(factors: list[float]) -> Rules:
    """RULES with each engagement rule's points multiplied by its factor (points only)."""
    spec = RULES.spec.model_dump()
    spec["version"] = "props-2"
    for rule, factor in zip(spec["engagement"]["rules"], factors, strict=True):
        rule["points"] *= factor
    return Rules(RulesFile.model_validate(spec))


def _drawn_points(data: st.DataObject) -> Rules:
    """RULES with new points for the engagement rules (halved, doubled, negated, ...)."""
    factors = st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0, -1.0]), min_size=4, max_size=4)
    return _new_points(data.draw(factors))


@given(sequences, st.data())
def test_a_points_only_change_reweights_each_lead_as_if_the_new_points_had_always_held(
    lines: list[str], data: st.DataObject
) -> None:
    proposed = _drawn_points(data)
    split = data.draw(st.integers(0, len(lines)))
    first = Replay(RULES)
    for _ in first.feed(lines[:split]):
        pass
    carried = {lead: decode_state(encode_state(state)) for lead, state in first.states.items()}
    second = Replay(proposed, states=carried, latest=first.latest)
    for _ in second.feed(lines[split:]):
        pass
    whole = Replay(proposed)
    for _ in whole.feed(lines):
        pass

    touched = {json.loads(line)["userId"] for line in lines[split:]}
    for lead in touched:
        got, want = second.states[lead], whole.states[lead]
        assert got.clock == want.clock
        assert got.engagement.keys() == want.engagement.keys()
        for rule_id, total in want.engagement.items():
            assert math.isclose(got.engagement[rule_id], total, rel_tol=1e-9, abs_tol=1e-9), rule_id
        assert got.engagement_points == want.engagement_points


def test_a_merge_after_a_points_change_adds_both_leads_in_the_new_points() -> None:
    at = START.isoformat()
    lines = [
        json.dumps({"type": "page", "messageId": "p1", "anonymousId": "a1", "timestamp": at,
                    "properties": {"path": "/pricing"}}),
        json.dumps({"type": "track", "messageId": "t1", "userId": "u1", "timestamp": at,
                    "event": "Demo Requested"}),
        # After the change: the visitor signs in, and the two leads are one.
        json.dumps({"type": "identify", "messageId": "i1", "userId": "u1", "anonymousId": "a1",
                    "timestamp": at, "traits": {"email": "u1@acme.example"}}),
    ]  # fmt: skip
    proposed = _new_points([1.0, 2.0, 1.0, 3.0])
    first = Replay(RULES)
    for _ in first.feed(lines[:2]):
        pass
    second = Replay(proposed, states=first.states, identities=first.identities, latest=first.latest)
    for _ in second.feed(lines[2:]):
        pass
    whole = Replay(proposed)
    for _ in whole.feed(lines):
        pass
    assert second.merges == whole.merges == 1
    assert (
        second.states["u1"].engagement
        == whole.states["u1"].engagement
        == {"demo": 80.0, "pricing": 60.0}
    )


@given(sequences, st.data())
def test_the_rules_sweep_reweights_a_lead_as_if_the_new_points_had_always_held(
    lines: list[str], data: st.DataObject
) -> None:
    # A lead with no message since the change, brought over by the sweep at `until`.
    proposed = _drawn_points(data)
    _, before = replay(lines)
    whole = Replay(proposed)
    for _ in whole.feed(lines):
        pass
    until = max(s.clock for s in before.values() if s.clock is not None) + data.draw(
        st.floats(0, 5 * 86_400)
    )
    for lead, state in before.items():
        got, _ = bring_to_rules(state, until, proposed)
        want = whole.states[lead]
        assert got.clock == max(until, state.clock or until)
        assert got.engagement.keys() == want.engagement.keys()
        for rule_id, total in want.engagement.items():
            expected = decay(total, got.clock - want.clock, proposed)  # type: ignore[operator]
            assert math.isclose(got.engagement[rule_id], expected, rel_tol=1e-9, abs_tol=1e-9)
        assert got.fit == want.fit and got.fit_fingerprint == proposed.fingerprint
        assert bring_to_rules(got, until + 60, proposed) == (got, [])  # brought over once


def _at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def _lead(*messages: dict[str, object]) -> LeadState:
    state = None
    for index, fields in enumerate(messages):
        message = parse_message(json.dumps({"messageId": f"s{index}", "userId": "lee", **fields}))
        assert not isinstance(message, Rejection)
        state, _ = apply_message(state, message, RULES)
    assert state is not None
    return state


def test_new_points_that_lift_a_quiet_lead_over_the_line_make_it_an_mql_at_the_sweep() -> None:
    lee = _lead(
        {"type": "identify", "timestamp": _at(0),
         "traits": {"title": "VP Sales", "company": {"employees": 80}}},
        {"type": "page", "timestamp": _at(1), "properties": {"path": "/pricing"}},
    )  # fmt: skip
    assert lee.stage is Stage.LEAD  # fit 40, engagement 20 < 40
    proposed = _new_points([1.0, 1.0, 1.0, 3.0])  # pricing 20 -> 60
    assert snapshot(lee, proposed).rules_version == "before props-2"
    until = START.timestamp() + 3600
    brought, outputs = bring_to_rules(lee, until, proposed)
    (change,) = outputs
    assert isinstance(change, Transition)
    assert (change.from_stage, change.to_stage, change.trigger) == ("lead", "mql", "rules")
    assert change.message_id is None and change.occurred_at.timestamp() == until
    assert change.reason.startswith("rules props-2: fit 40 >= 30 and engagement")
    assert change.rules_version == "props-2"
    assert bring_to_rules(lee, until, proposed)[1] == outputs  # the same id every time
    assert snapshot(brought, proposed).rules_version == "props-2"


def test_a_fit_rule_removed_demotes_a_quiet_mql_at_the_sweep() -> None:
    lee = _lead(
        {"type": "identify", "timestamp": _at(0),
         "traits": {"title": "VP Sales", "company": {"employees": 80}}},
        {"type": "track", "timestamp": _at(1), "event": "Demo Requested"},
    )  # fmt: skip
    assert lee.stage is Stage.MQL
    spec = RULES.spec.model_dump()
    spec["version"] = "props-no-boss"
    spec["fit"]["rules"] = [rule for rule in spec["fit"]["rules"] if rule["id"] != "boss"]
    proposed = Rules(RulesFile.model_validate(spec))
    _, outputs = bring_to_rules(lee, START.timestamp() + 120, proposed)
    assert [(t.from_stage, t.to_stage, t.trigger, t.reason) for t in outputs] == [  # type: ignore[union-attr]
        ("mql", "lead", "rules", "rules props-no-boss: fit 20 below 30")
    ]
