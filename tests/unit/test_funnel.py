"""Funnel totals folded from transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoring.funnel import FORWARDED_KEPT, Applied, Funnel, LeadFunnel, Origin, Recent
from scoring.outputs import CriteriaState, Transition
from scoring.state import Stage

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
CRITERIA = CriteriaState(framework="BANT", met=[], unmet=[], unknown=[], require=3, ready=False)


def move(lead: str, a: Stage, b: Stage, at: datetime) -> Transition:
    return Transition(
        transition_id=f"{lead}-{a}-{b}", lead_id=lead, from_stage=a, to_stage=b,
        occurred_at=at, trigger="message", message_id="m", reason="r", fit_score=0,
        engagement_score=0, top_rules=[], criteria=CRITERIA, rules_version="v",
    )  # fmt: skip


def test_stages_days_and_conversion() -> None:
    funnel = Funnel()
    funnel.add_new_leads(3)
    funnel.add(move("a", Stage.LEAD, Stage.MQL, T0), None)
    funnel.add(move("b", Stage.LEAD, Stage.MQL, T0), None)
    funnel.add(move("a", Stage.MQL, Stage.SQL, T0 + timedelta(days=1)), 24.0)
    view = funnel.view(T0)
    assert view.stages == {"lead": 1, "mql": 1, "sql": 1, "disqualified": 0}
    assert [(d.day, d.total, d.counts) for d in view.transitions_per_day] == [
        ("2026-11-01", 2, {"lead>mql": 2}),
        ("2026-11-02", 1, {"mql>sql": 1}),
    ]
    assert view.mql_to_sql.conversion_rate == 0.5
    median = view.mql_to_sql.median_hours_to_sql
    assert median is not None and abs(median - 24) / 24 < 0.13


def test_median_of_many_durations_is_within_a_bucket() -> None:
    funnel = Funnel()
    for hours in [1, 2, 3, 5, 8, 13, 21, 34, 55]:
        funnel.add(move(f"l{hours}", Stage.MQL, Stage.SQL, T0), float(hours))
    median = funnel.median_hours_to_sql()
    assert median is not None and abs(median - 8) / 8 < 0.13
    assert Funnel.model_validate_json(funnel.model_dump_json()) == funnel


def test_recent_keeps_the_latest() -> None:
    recent = Recent()
    for i in range(150):
        recent.add(move(f"l{i}", Stage.LEAD, Stage.MQL, T0))
    assert len(recent.transitions) == 100
    assert recent.transitions[-1].lead_id == "l149"


def test_a_funnel_record_read_again_or_forwarded_again_is_applied_once() -> None:
    applied = Applied()
    t0, t1, e2 = "lead-transitions:0", "lead-transitions:1", "lead-events:2"
    assert applied.take(0, Origin(source=t1, offset=10))
    assert applied.take(1, Origin(source=e2, offset=7))  # a new lead
    assert applied.take(2, Origin(source=t0, offset=3))
    assert not applied.take(2, Origin(source=t0, offset=3))  # the funnel topic read again
    assert not applied.take(1, Origin(source=e2, offset=7))
    # Senders read their input again after a crash: the same origins, new offsets.
    assert not applied.take(3, Origin(source=t1, offset=10))
    assert not applied.take(4, Origin(source=t0, offset=3))
    assert not applied.take(5, Origin(source=e2, offset=7))
    assert applied.take(6, Origin(source=t1, offset=11))
    assert applied.take(7, None)
    assert applied.model_dump() == {"funnel_offset": 7, "origins": {t0: 3, t1: 11, e2: 7}}
    assert Applied.model_validate_json(applied.model_dump_json()) == applied


def test_a_transition_sent_again_is_counted_once_per_lead() -> None:
    lead = LeadFunnel()
    first = move("a", Stage.LEAD, Stage.MQL, T0)
    then = move("a", Stage.MQL, Stage.SQL, T0 + timedelta(hours=6))
    assert lead.take(first) and lead.hours_to_sql(first) is None
    assert not lead.take(first)
    assert lead.take(then) and lead.hours_to_sql(then) == 6.0
    assert not lead.take(first) and not lead.take(then)
    assert lead.mql_since is None
    again = LeadFunnel.decode(lead.encode())
    assert again == lead and not again.take(then)


def test_the_ids_a_lead_keeps_are_bounded_and_its_old_value_still_reads() -> None:
    lead = LeadFunnel()
    for n in range(3 * FORWARDED_KEPT):
        assert lead.take(move(f"x{n}", Stage.LEAD, Stage.MQL, T0))
    assert len(lead.forwarded) == FORWARDED_KEPT
    assert LeadFunnel.decode(repr(T0.timestamp()).encode()) == LeadFunnel(mql_since=T0.timestamp())
    assert LeadFunnel.decode(None) == LeadFunnel()


def test_the_sales_follow_up_figures() -> None:
    funnel = Funnel()
    assert funnel.view(T0).sales_follow_up.within_sla_share is None
    for kind, hours in [
        ("sla_met", 0.5),
        ("sla_met", 1.0),
        ("sla_met", 2.0),
        ("sla_breach", 4.0),
        ("sla_escalation", 8.0),
        ("sla_acted_late", 9.0),
    ]:
        funnel.add_follow_up(kind, hours)
    figures = funnel.view(T0).sales_follow_up
    assert (figures.met, figures.breached, figures.escalated, figures.acted_late) == (3, 1, 1, 1)
    assert figures.within_sla_share == 0.75
    # First actions: 0.5, 1, 2 (in time) and 9 (late): the median is 1 or 2 hours.
    median = figures.median_hours_to_first_action
    assert median is not None and 0.87 < median < 2.3
