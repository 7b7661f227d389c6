"""The index of SQLs waiting for a rep: due first, one entry per handoff, gone once acted on."""

from __future__ import annotations

from dataclasses import replace

from scoring import LeadState, Stage, load_rules, parse_rules
from scoring.state import Sla
from streams.state.waiting import WaitingSqls

RULES = load_rules()  # the example rules: a 4-hour SLA, escalated 4 working hours later
HOUR = 3600.0


def sql(name: str, qualified_at: float, handoff: str = "t1") -> LeadState:
    return LeadState(
        lead_id=name,
        stage=Stage.SQL,
        clock=qualified_at,
        engagement={"demo": 40.0},
        sla=Sla(qualified_at, f"{name}-{handoff}"),
    )


def test_the_longest_overdue_comes_first_and_overdue_counts_at_the_moment_asked() -> None:
    index = WaitingSqls()
    for name, at in [("b", 5 * HOUR), ("a", 0.0), ("c", 10 * HOUR)]:
        index.update(name.encode(), sql(name, at), RULES)
    assert [lead.lead_id for lead in index.most_urgent(10)] == ["a", "b", "c"]
    assert [lead.lead_id for lead in index.most_urgent(2)] == ["a", "b"]
    first = index.most_urgent(1)[0]
    assert (first.due_at, first.escalate_at) == (4 * HOUR, 8 * HOUR)
    assert (index.overdue(4 * HOUR - 1), index.overdue(4 * HOUR), index.overdue(100 * HOUR)) == (
        0,
        1,
        3,
    )


def test_a_lead_leaves_when_a_rep_acts_or_it_leaves_sql_and_a_new_handoff_has_new_instants() -> (
    None
):
    index = WaitingSqls()
    state = sql("a", 0.0)
    index.update(b"a", state, RULES)
    index.update(b"a", replace(state, clock=HOUR, engagement={"demo": 60.0}), RULES)
    [waiting] = index.most_urgent(10)
    assert (waiting.engagement, waiting.clock, waiting.due_at) == (60.0, HOUR, 4 * HOUR)
    index.update(b"a", replace(state, sla=None), RULES)  # acted on
    assert len(index) == 0
    index.update(b"a", sql("a", 20 * HOUR, handoff="t2"), RULES)  # recycled, qualified again
    assert index.most_urgent(1)[0].due_at == 24 * HOUR
    index.forget(b"a")  # deleted
    assert index.most_urgent(10) == []


def test_rules_without_a_sales_section_keep_no_one_waiting() -> None:
    rules = parse_rules("version: no-sales\nstages: {mql: {min_fit: 0, min_engagement: 10}}\n")
    index = WaitingSqls()
    index.update(b"a", sql("a", 0.0), rules)
    assert len(index) == 0
