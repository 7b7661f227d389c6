"""The sales follow-up of an SQL: SLA breach and escalation instants, acting in time,
re-qualification, and the rules' `sales` section (see README, "Sales follow-up")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import (
    LeadState,
    RulesError,
    Transition,
    advance,
    apply_message,
    decode_state,
    encode_state,
    next_crossing,
    parse_message,
    parse_rules,
)
from scoring.calendar import working_seconds_between
from scoring.outputs import SALES_ALERT_ADAPTER, FollowUp
from scoring.replay import Replay
from scoring.rules import Rules

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0


def rules_with(sales: str) -> Rules:
    return parse_rules(
        f"""
version: follow-up-test
engagement:
  rules:
    - {{id: demo, event: Demo Requested, points: 50}}
stages:
  mql: {{min_fit: 0, min_engagement: 10}}
{sales}
"""
    )


ROUND_THE_CLOCK = rules_with("sales: {sla_hours: 1, escalate_after_hours: 2}")
OFFICE = rules_with(
    """
sales:
  sla_hours: 1
  escalate_after_hours: 4
  acted_on: [Sales Contacted]
  business_hours: {time_zone: Europe/Berlin, days: [mon, tue, wed, thu, fri],
                   start: "09:00", end: 18:00}
"""
)


def track(event: str, at: datetime, message_id: str, **properties: Any) -> str:
    return json.dumps(
        {
            "type": "track",
            "event": event,
            "userId": "ada",
            "messageId": message_id,
            "timestamp": at.isoformat(),
            "properties": properties,
        }
    )


def qualified(rules: Rules, at: datetime) -> tuple[LeadState, Transition]:
    """A lead made mql by a demo request, then sql by BANT an hour later (at `at`)."""
    bant = {"budget": True, "authority": True, "need": True}
    state, _ = apply_message(
        None, parse(track("Demo Requested", at - timedelta(hours=1), "d")), rules
    )
    state, outputs = apply_message(
        state,
        parse(track("Qualification Updated", at, "q", framework="BANT", criteria=bant)),
        rules,
    )
    [handoff] = [o for o in outputs if isinstance(o, Transition) and o.to_stage == "sql"]
    return state, handoff


def parse(line: str) -> Any:
    message = parse_message(line)
    assert not hasattr(message, "reason"), message
    return message


def follow_ups(outputs: list[Any]) -> list[FollowUp]:
    return [output for output in outputs if isinstance(output, FollowUp)]


def kinds(outputs: list[Any]) -> list[tuple[str, datetime]]:
    return [(f.kind, f.occurred_at) for f in follow_ups(outputs)]


T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday


def test_an_sql_breaches_when_its_sla_runs_out_and_escalates_later() -> None:
    state, handoff = qualified(ROUND_THE_CLOCK, T0)
    assert state.sla is not None and next_crossing(state, ROUND_THE_CLOCK) == T0.timestamp() + HOUR
    same, nothing = advance(state, T0.timestamp() + HOUR - 0.001, ROUND_THE_CLOCK)
    assert nothing == [] and same == state
    breached, outputs = advance(state, T0.timestamp() + HOUR, ROUND_THE_CLOCK)
    [breach] = follow_ups(outputs)
    assert (breach.kind, breach.occurred_at, breach.due_at) == (
        "sla_breach",
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1),
    )
    assert breach.sql_transition_id == handoff.transition_id
    assert (breach.working_hours, breach.hours_overdue, breach.stage) == (1.0, 0.0, "sql")
    assert "SLA breached" in breach.summary and breach.engagement_score == 50.0
    assert next_crossing(breached, ROUND_THE_CLOCK) == T0.timestamp() + 3 * HOUR
    escalated, outputs = advance(breached, T0.timestamp() + 10 * HOUR, ROUND_THE_CLOCK)
    [escalation] = follow_ups(outputs)
    assert (escalation.kind, escalation.occurred_at) == ("sla_escalation", T0 + timedelta(hours=3))
    assert escalation.hours_overdue == 2.0
    assert next_crossing(escalated, ROUND_THE_CLOCK) is None
    assert advance(escalated, T0.timestamp() + 100 * HOUR, ROUND_THE_CLOCK)[1] == []


def test_both_come_at_once_when_time_passes_both_instants() -> None:
    state, _ = qualified(ROUND_THE_CLOCK, T0)
    _, outputs = advance(state, T0.timestamp() + 5 * HOUR, ROUND_THE_CLOCK)
    assert kinds(outputs) == [
        ("sla_breach", T0 + timedelta(hours=1)),
        ("sla_escalation", T0 + timedelta(hours=3)),
    ]


def test_a_lead_qualified_friday_at_1755_with_a_one_hour_sla_breaches_on_monday() -> None:
    friday = datetime(2026, 12, 4, 17, 55, tzinfo=BERLIN)
    state, _ = qualified(OFFICE, friday)
    monday = datetime(2026, 12, 7, 9, 55, tzinfo=BERLIN)
    assert next_crossing(state, OFFICE) == monday.timestamp()
    _, outputs = advance(state, monday.timestamp() + 1, OFFICE)
    [breach] = follow_ups(outputs)
    assert breach.due_at == monday and breach.working_hours == 1.0
    # Four more working hours: Monday 13:55.
    assert next_crossing(advance(state, monday.timestamp(), OFFICE)[0], OFFICE) == (
        datetime(2026, 12, 7, 13, 55, tzinfo=BERLIN).timestamp()
    )


def test_business_hours_follow_the_zone_across_a_daylight_saving_change() -> None:
    # Berlin moves to summer time on Sunday 2027-03-28: Monday's 09:00 is 07:00 UTC.
    rules = rules_with(
        'sales: {sla_hours: 2, business_hours: {time_zone: Europe/Berlin, start: "09:00", '
        'end: "18:00"}}'
    )
    friday = datetime(2027, 3, 26, 17, 30, tzinfo=BERLIN)  # 16:30 UTC, winter time
    state, _ = qualified(rules, friday)
    due = next_crossing(state, rules)
    assert due == datetime(2027, 3, 29, 8, 30, tzinfo=UTC).timestamp()  # 10:30 summer time


def test_acting_before_the_instant_meets_the_sla_and_nothing_breaches() -> None:
    state, handoff = qualified(ROUND_THE_CLOCK, T0)
    just_before = T0 + timedelta(hours=1) - timedelta(milliseconds=1)
    acted, outputs = apply_message(
        state, parse(track("Lead Accepted", just_before, "a")), ROUND_THE_CLOCK
    )
    [met] = follow_ups(outputs)
    assert (met.kind, met.occurred_at, met.action, met.message_id) == (
        "sla_met",
        just_before,
        "Lead Accepted",
        "a",
    )
    assert met.hours_overdue == 0.0 and met.working_hours == pytest.approx(1.0, abs=1e-3)
    assert met.sql_transition_id == handoff.transition_id
    assert acted.sla is None and acted.stage == "sql"
    assert next_crossing(acted, ROUND_THE_CLOCK) is None
    assert advance(acted, T0.timestamp() + 100 * HOUR, ROUND_THE_CLOCK)[1] == []


def test_acting_at_or_after_the_instant_is_late_the_breach_comes_first() -> None:
    for late in (timedelta(hours=1), timedelta(hours=1, seconds=1)):
        state, _ = qualified(ROUND_THE_CLOCK, T0)
        acted, outputs = apply_message(
            state, parse(track("Lead Rejected", T0 + late, "r")), ROUND_THE_CLOCK
        )
        assert kinds(outputs) == [
            ("sla_breach", T0 + timedelta(hours=1)),
            ("sla_acted_late", T0 + late),
        ]
        late_act = follow_ups(outputs)[1]
        assert late_act.action == "Lead Rejected"
        assert late_act.hours_overdue == pytest.approx(late.total_seconds() / HOUR - 1, abs=1e-3)
        assert acted.sla is None and acted.stage == "disqualified"


def test_a_configured_event_acts_and_another_does_not() -> None:
    state, _ = qualified(OFFICE, datetime(2026, 12, 2, 10, 0, tzinfo=BERLIN))
    opened, outputs = apply_message(
        state,
        parse(track("Email Opened", datetime(2026, 12, 2, 10, 10, tzinfo=BERLIN), "o")),
        OFFICE,
    )
    assert follow_ups(outputs) == [] and opened.sla is not None
    contacted, outputs = apply_message(
        opened,
        parse(track("Sales Contacted", datetime(2026, 12, 2, 10, 30, tzinfo=BERLIN), "c")),
        OFFICE,
    )
    assert kinds(outputs) == [("sla_met", datetime(2026, 12, 2, 10, 30, tzinfo=BERLIN))]
    assert contacted.sla is None


def test_a_lead_recycled_and_qualified_again_starts_a_new_sla() -> None:
    state, first = qualified(ROUND_THE_CLOCK, T0)
    state, _ = advance(state, T0.timestamp() + 2 * HOUR, ROUND_THE_CLOCK)  # breached
    recycled_at = T0 + timedelta(hours=2, minutes=30)
    state, outputs = apply_message(
        state, parse(track("Lead Recycled", recycled_at, "re")), ROUND_THE_CLOCK
    )
    assert kinds(outputs) == [("sla_acted_late", recycled_at)]
    assert state.sla is None and state.stage == "lead"
    # The criteria still hold: the next message makes it mql and sql again.
    again_at = T0 + timedelta(days=1)
    state, outputs = apply_message(
        state, parse(track("Demo Requested", again_at, "d2")), ROUND_THE_CLOCK
    )
    [second] = [o for o in outputs if isinstance(o, Transition) and o.to_stage == "sql"]
    assert second.transition_id != first.transition_id
    assert state.sla is not None and state.sla.transition_id == second.transition_id
    _, outputs = advance(state, again_at.timestamp() + HOUR, ROUND_THE_CLOCK)
    [breach] = follow_ups(outputs)
    assert breach.sql_transition_id == second.transition_id


def test_an_sql_made_by_a_rep_accepting_it_is_acted_on_already() -> None:
    state, _ = apply_message(None, parse(track("Lead Accepted", T0, "a")), ROUND_THE_CLOCK)
    assert state.stage == "sql" and state.sla is None


def test_without_a_sales_section_no_sla_is_kept() -> None:
    state, _ = qualified(rules_with(""), T0)
    assert state.stage == "sql" and state.sla is None


def test_the_sla_survives_the_table_and_replay_gives_the_same_records() -> None:
    lines = [
        track("Demo Requested", T0 - timedelta(hours=1), "d"),
        track("Qualification Updated", T0, "q", framework="BANT",
              criteria={"budget": True, "authority": True, "need": True}),
        track("Email Opened", T0 + timedelta(hours=4), "o"),
    ]  # fmt: skip
    state = None
    streamed: list[Any] = []
    for line in lines:
        state, outputs = apply_message(
            state and decode_state(encode_state(state)), parse(line), ROUND_THE_CLOCK
        )
        streamed.extend(follow_ups(outputs))
    replayed = [o for o in Replay(ROUND_THE_CLOCK).feed(lines) if isinstance(o, FollowUp)]
    assert replayed == streamed and [f.kind for f in replayed] == ["sla_breach", "sla_escalation"]
    alert = SALES_ALERT_ADAPTER.validate_json(replayed[0].model_dump_json())
    assert alert == replayed[0]


def test_replay_as_of_a_time_gives_the_follow_ups_up_to_it() -> None:
    lines = [
        track("Demo Requested", T0 - timedelta(hours=1), "d"),
        track("Qualification Updated", T0, "q", framework="BANT",
              criteria={"budget": True, "authority": True, "need": True}),
    ]  # fmt: skip
    replay = Replay(ROUND_THE_CLOCK, at=T0.timestamp() + 2 * HOUR)
    list(replay.feed(lines))
    _, by_time = replay.finish()
    assert [(f.kind, f.occurred_at) for f in by_time if isinstance(f, FollowUp)] == [
        ("sla_breach", T0 + timedelta(hours=1))
    ]


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    sla_hours=st.floats(min_value=0.25, max_value=80, allow_nan=False),
    office=st.booleans(),
)
def test_the_breach_never_comes_before_the_sla_of_working_time_has_passed(
    start: datetime, sla_hours: float, office: bool
) -> None:
    hours = (
        'business_hours: {time_zone: America/New_York, days: [mon, tue, thu], start: "08:30", '
        'end: "12:00"}'
        if office
        else ""
    )
    rules = rules_with(f"sales:\n  sla_hours: {sla_hours!r}\n  {hours}")
    state, _ = qualified(rules, start)
    due = next_crossing(state, rules)
    assert due is not None and due >= start.timestamp() + sla_hours * HOUR - 1e-6
    worked = working_seconds_between(start.timestamp(), due, rules.business_hours)
    assert worked == pytest.approx(sla_hours * HOUR, abs=1e-3)
    _, outputs = advance(state, due, rules)
    assert [f.kind for f in follow_ups(outputs)] == ["sla_breach"]


@pytest.mark.parametrize(
    ("sales", "problem"),
    [
        ("sales: {sla_hours: 0}", "sales.sla_hours: Input should be greater than 0"),
        ("sales: {escalate_after_hours: 2}", "sales.sla_hours: Field required"),
        (
            "sales: {sla_hours: 1, business_hours: {time_zone: Mars/Olympus, "
            "start: '9:00', end: '17:00'}}",
            "sales.business_hours.time_zone: unknown IANA time zone 'Mars/Olympus'",
        ),
        (
            "sales: {sla_hours: 1, business_hours: {time_zone: UTC, start: '18:00', end: '09:00'}}",
            "sales.business_hours: start 18:00:00 must be before end 09:00:00",
        ),
        (
            "sales: {sla_hours: 1, business_hours: {time_zone: UTC, days: [], "
            "start: '9:00', end: '17:00'}}",
            "sales.business_hours.days: at least one working day is needed",
        ),
        (
            "sales: {sla_hours: 1, business_hours: {time_zone: UTC, days: [monday], "
            "start: '9:00', end: '17:00'}}",
            "sales.business_hours.days[0]: Input should be 'mon'",
        ),
        (
            "sales: {sla_hours: 1, acted_on: ['']}",
            "sales.acted_on[0]: String should have at least 1",
        ),
        ("sales: {sla_hours: 1, sla: 2}", "sales.sla: Extra inputs are not permitted"),
    ],
)
def test_a_broken_sales_section_is_refused_with_the_path(sales: str, problem: str) -> None:
    with pytest.raises(RulesError) as raised:
        rules_with(sales)
    assert any(line.startswith(problem) for line in raised.value.problems), raised.value.problems


def test_unquoted_hours_in_yaml_are_read_as_times() -> None:
    # YAML 1.1 reads 18:00 as 1080 (minutes, base 60); the rules read it as 18:00.
    hours = OFFICE.business_hours
    assert hours is not None and (hours.start.hour, hours.end.hour) == (9, 18)


def test_merged_leads_keep_the_older_sla() -> None:
    from dataclasses import replace

    from scoring.engine import merge

    older, _ = qualified(ROUND_THE_CLOCK, T0)
    newer, _ = qualified(ROUND_THE_CLOCK, T0 + timedelta(minutes=30))
    newer = replace(newer, lead_id="ada-2", seen=b"")
    merged, _ = merge(newer, older, ROUND_THE_CLOCK, "link")
    assert merged.sla is not None and merged.sla == older.sla
    assert next_crossing(merged, ROUND_THE_CLOCK) == T0.timestamp() + HOUR
