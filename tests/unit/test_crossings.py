"""The decay-crossing index of the stream worker."""

from __future__ import annotations

from streams.state.crossings import CrossingIndex


def test_due_leads_come_out_in_time_order_once() -> None:
    index = CrossingIndex()
    index.set(b"b", 20.0)
    index.set(b"a", 10.0)
    index.set(b"c", 30.0)
    assert index.pop_due(5.0) == []
    assert index.pop_due(20.0) == [(b"a", 10.0), (b"b", 20.0)]
    assert index.pop_due(20.0) == []
    assert len(index) == 1


def test_a_moved_or_cleared_crossing_is_not_due_at_its_old_instant() -> None:
    index = CrossingIndex()
    index.set(b"a", 10.0)
    index.set(b"a", 50.0)  # a new message pushed the crossing later
    index.set(b"b", 10.0)
    index.set(b"b", None)  # promoted to sql: no crossing any more
    assert index.pop_due(40.0) == []
    assert index.pop_due(50.0) == [(b"a", 50.0)]


def test_stale_entries_do_not_pile_up() -> None:
    index = CrossingIndex()
    for instant in range(100_000):
        index.set(b"a", float(instant))
    assert len(index) == 1
    assert len(index._heap) <= 2 + 1024
    assert index.pop_due(1e9) == [(b"a", 99_999.0)]
