"""Working time: when an SLA of so many working hours, started at an instant, runs out.

The sales follow-up SLA counts time only inside business hours when the rules give
them: a lead qualified on Friday at 17:55 with a one-hour SLA in working hours of
09:00-18:00, Monday to Friday, is due on Monday at 09:55. Instants are epoch seconds;
business hours are wall-clock times in an IANA time zone, so a daylight-saving change
moves them with the zone (a working day is as long in real time as its hours say, on
the day the clocks change too). Exact: the working intervals are walked day by day
(a 1,000-hour SLA is some 175 days), never time step by time step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Working hours from `start` to `end` (same day, start before end) on `days`
    (0 = Monday), wall-clock time in `zone`."""

    zone: ZoneInfo
    days: frozenset[int]
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("business hours need at least one working day, 0 to 6")
        if self.start >= self.end:
            raise ValueError("business hours must start before they end, on the same day")

    def shifts_from(self, moment: float) -> _Shifts:
        """The working intervals (epoch seconds) that end after `moment`, in order."""
        return _Shifts(self, datetime.fromtimestamp(moment, self.zone).date(), moment)


class _Shifts:
    def __init__(self, hours: BusinessHours, day: date, after: float) -> None:
        self.hours, self.day, self.after = hours, day, after

    def __iter__(self) -> _Shifts:
        return self

    def __next__(self) -> tuple[float, float]:
        hours = self.hours
        while True:
            day = self.day
            self.day = day + timedelta(days=1)
            if day.weekday() not in hours.days:
                continue
            opens = datetime.combine(day, hours.start, hours.zone).timestamp()
            closes = datetime.combine(day, hours.end, hours.zone).timestamp()
            if closes > self.after:
                return max(opens, self.after), closes


def add_working_time(start: float, seconds: float, hours: BusinessHours | None) -> float:
    """The instant at which `seconds` of working time have passed since `start`.

    Without business hours every second counts. With them, time outside them does not;
    an SLA started outside them begins at the next opening. One that runs out exactly
    at closing time is due at closing time, not at the next opening. The result is never
    earlier than `start + seconds`."""
    if seconds < 0:
        raise ValueError("working time cannot be negative")
    if hours is None:
        return start + seconds
    remaining = seconds
    for opens, closes in hours.shifts_from(start):
        if remaining <= closes - opens:
            return opens + remaining
        remaining -= closes - opens
    raise AssertionError("unreachable: the shifts never end")


def working_seconds_between(start: float, end: float, hours: BusinessHours | None) -> float:
    """Working time from `start` to `end` (0 if `end` is not later)."""
    if end <= start:
        return 0.0
    if hours is None:
        return end - start
    total = 0.0
    for opens, closes in hours.shifts_from(start):
        if opens >= end:
            return total
        total += min(closes, end) - opens
        if closes >= end:
            return total
    raise AssertionError("unreachable: the shifts never end")
