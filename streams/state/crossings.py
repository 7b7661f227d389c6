"""The index of coming decay demotions: when each mql lead's engagement will cross the exit line.

The worker keeps it for the leads of the partitions it owns, updates it as it
applies messages, rebuilds it after a rebalance, and every few seconds takes
out the leads whose crossing instant wall-clock time has passed. Nothing scans
every lead except the rebuild.
"""

from __future__ import annotations

import heapq


class CrossingIndex:
    """Lead key -> next crossing instant (epoch seconds), with cheap 'which are due?'."""

    def __init__(self) -> None:
        self._next: dict[bytes, float] = {}
        # (instant, lead) entries; an entry whose instant no longer matches `_next` is stale.
        self._heap: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._next)

    def set(self, lead_key: bytes, instant: float | None) -> None:
        if instant is None:
            self._next.pop(lead_key, None)
            return
        if self._next.get(lead_key) == instant:
            return
        self._next[lead_key] = instant
        heapq.heappush(self._heap, (instant, lead_key))
        if len(self._heap) > 2 * len(self._next) + 1024:
            self._compact()

    def pop_due(self, now: float) -> list[tuple[bytes, float]]:
        """The leads whose crossing is at or before `now`, taken out of the index."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            instant, lead_key = heapq.heappop(self._heap)
            if self._next.get(lead_key) == instant:
                del self._next[lead_key]
                due.append((lead_key, instant))
        return due

    def clear(self) -> None:
        self._next.clear()
        self._heap.clear()

    def _compact(self) -> None:
        self._heap = [(instant, lead) for lead, instant in self._next.items()]
        heapq.heapify(self._heap)
