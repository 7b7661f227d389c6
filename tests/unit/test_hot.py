"""The hottest-leads index ranks as decayed engagement would, at any moment."""

from __future__ import annotations

from dataclasses import replace

from scoring import LeadState, Stage, load_rules, snapshot
from streams.state.hot import HotLeads

RULES = load_rules()
DAY = 86_400.0


def lead(name: str, engagement: float, clock: float, stage: Stage = Stage.MQL) -> LeadState:
    return LeadState(lead_id=name, stage=stage, clock=clock, engagement={"x": engagement})


def test_order_is_the_order_of_decayed_engagement_now() -> None:
    # 80 points 30 days ago (40 now) ranks below 50 points today.
    old, fresh = lead("old", 80, 0.0), lead("fresh", 50, 30 * DAY)
    index = HotLeads()
    index.update(b"old", old, RULES)
    index.update(b"fresh", fresh, RULES)
    top = index.top("mql", 10)
    assert [hot.lead_id for hot in top] == ["fresh", "old"]
    now = 40 * DAY
    by_engagement = sorted([old, fresh], key=lambda s: -snapshot(s, RULES, now).engagement_score)
    assert [s.lead_id for s in by_engagement] == ["fresh", "old"]
    assert round(top[1].engagement_at(now, RULES), 3) == snapshot(old, RULES, now).engagement_score


def test_a_lead_moves_between_stages_and_leaves_when_it_has_no_engagement() -> None:
    index = HotLeads()
    state = lead("a", 50, 0.0)
    index.update(b"a", state, RULES)
    index.update(b"a", replace(state, stage=Stage.SQL), RULES)
    assert index.top("mql", 10) == []
    assert [hot.lead_id for hot in index.top("sql", 10)] == ["a"]
    index.update(b"a", replace(state, stage=Stage.SQL, engagement={}), RULES)
    assert index.top("sql", 10) == []


def test_limit() -> None:
    index = HotLeads()
    for i in range(20):
        index.update(f"l{i}".encode(), lead(f"l{i}", i + 1, 0.0), RULES)
    assert [hot.lead_id for hot in index.top("mql", 3)] == ["l19", "l18", "l17"]
