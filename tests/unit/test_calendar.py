"""Working time for the sales SLA (scoring.calendar): business hours in a time zone,
weekends, daylight-saving changes, and the property that an SLA never runs out early."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.calendar import BusinessHours, add_working_time, working_seconds_between

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3600.0
WEEKDAYS = frozenset(range(5))
OFFICE = BusinessHours(BERLIN, WEEKDAYS, time(9), time(18))


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(instant: float, zone: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(instant, zone).strftime("%a %Y-%m-%d %H:%M")


def test_without_business_hours_every_second_counts() -> None:
    start = at("2026-12-04T17:55")
    assert add_working_time(start, HOUR, None) == start + HOUR


def test_a_lead_qualified_friday_at_17_55_with_a_one_hour_sla_is_due_on_monday() -> None:
    due = add_working_time(at("2026-12-04T17:55"), HOUR, OFFICE)  # a Friday
    assert local(due) == "Mon 2026-12-07 09:55"


def test_an_sla_started_outside_the_hours_starts_at_the_next_opening() -> None:
    assert local(add_working_time(at("2026-12-05T11:00"), HOUR, OFFICE)) == "Mon 2026-12-07 10:00"
    assert local(add_working_time(at("2026-12-07T06:00"), HOUR, OFFICE)) == "Mon 2026-12-07 10:00"
    assert local(add_working_time(at("2026-12-07T19:00"), 0, OFFICE)) == "Tue 2026-12-08 09:00"


def test_an_sla_that_runs_out_at_closing_time_is_due_then() -> None:
    assert local(add_working_time(at("2026-12-07T17:00"), HOUR, OFFICE)) == "Mon 2026-12-07 18:00"
    # One second more is the next morning's first second.
    due = add_working_time(at("2026-12-07T17:00"), HOUR + 1, OFFICE)
    assert due == at("2026-12-08T09:00") + 1


def test_a_long_sla_spans_weeks() -> None:
    # 9 hours a day, 5 days a week: 45 working hours is one week to the minute.
    due = add_working_time(at("2026-12-07T10:00"), 45 * HOUR, OFFICE)
    assert local(due) == "Mon 2026-12-14 10:00"


@pytest.mark.parametrize(
    ("start", "due", "real_hours"),
    [
        # Europe/Berlin leaves summer time on Sunday 2026-10-25: Friday's evening hour is
        # due on Monday at 09:55 local time, 65 real hours later (64 on a plain weekend).
        ("2026-10-23T17:55", "Mon 2026-10-26 09:55", 65),
        # ...and enters it on Sunday 2026-03-29: 63 real hours.
        ("2026-03-27T17:55", "Mon 2026-03-30 09:55", 63),
        ("2026-12-04T17:55", "Mon 2026-12-07 09:55", 64),
    ],
)
def test_a_daylight_saving_change_moves_the_hours_with_the_zone(
    start: str, due: str, real_hours: int
) -> None:
    instant = add_working_time(at(start), HOUR, OFFICE)
    assert local(instant) == due
    assert instant - at(start) == real_hours * HOUR


def test_hours_that_span_the_change_count_real_time() -> None:
    # Around the clock on the night the clocks go back: that day has 25 hours.
    always = BusinessHours(NEW_YORK, frozenset(range(7)), time(0), time(23, 59, 59))
    start = at("2026-11-01T00:00", NEW_YORK)
    assert working_seconds_between(start, at("2026-11-01T23:59:59", NEW_YORK), always) == (
        25 * HOUR - 1
    )


def test_working_seconds_between_counts_only_the_hours() -> None:
    friday, monday = at("2026-12-04T17:00"), at("2026-12-07T10:00")
    assert working_seconds_between(friday, monday, OFFICE) == 2 * HOUR
    assert working_seconds_between(monday, friday, OFFICE) == 0.0


def test_business_hours_are_checked() -> None:
    with pytest.raises(ValueError, match="working day"):
        BusinessHours(BERLIN, frozenset(), time(9), time(17))
    with pytest.raises(ValueError, match="start before"):
        BusinessHours(BERLIN, WEEKDAYS, time(17), time(9))
    with pytest.raises(ValueError, match="negative"):
        add_working_time(0.0, -1, OFFICE)


zones = st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC")])
hours_of_day = st.tuples(st.integers(0, 22), st.integers(1, 23)).filter(lambda h: h[0] < h[1])
calendars = st.builds(
    lambda zone, days, span: BusinessHours(zone, frozenset(days), time(span[0]), time(span[1])),
    zones,
    st.sets(st.integers(0, 6), min_size=1),
    hours_of_day,
)
instants = st.floats(
    datetime(2026, 1, 1, tzinfo=UTC).timestamp(), datetime(2028, 1, 1, tzinfo=UTC).timestamp()
)


@settings(max_examples=300)
@given(calendars, instants, st.floats(0, 200 * HOUR))
def test_an_sla_never_runs_out_before_its_working_time_has_passed(
    hours: BusinessHours, start: float, seconds: float
) -> None:
    due = add_working_time(start, seconds, hours)
    assert due >= start + seconds
    assert working_seconds_between(start, due, hours) == pytest.approx(seconds, abs=1e-3)
    # And not later than needed: a second before, less working time had passed.
    if seconds >= 1:
        assert working_seconds_between(start, due - 1, hours) < seconds
