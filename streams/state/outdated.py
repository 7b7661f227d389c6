"""The leads scored under earlier rules than the ones in use, per partition, for the rules
sweep (`streams.processing.sweep`) to bring over."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from scoring import LeadState


class OutdatedLeads:
    """The leads of this worker's partitions to bring to the rules in use, in order."""

    def __init__(self) -> None:
        self._by_partition: dict[int, deque[bytes]] = {}
        self.found = 0  # listed since the last rebuild
        self.reported_at = 0.0

    def __len__(self) -> int:
        return sum(map(len, self._by_partition.values()))

    def partitions(self) -> set[int]:
        """The partitions with leads still to bring over."""
        return {partition for partition, leads in self._by_partition.items() if leads}

    def consider(
        self, lead_key: bytes, partition: int, state: LeadState | None, fingerprint: str
    ) -> None:
        """List the lead if its state is scored under rules other than `fingerprint`."""
        if state is not None and state.clock is not None and state.fit_fingerprint != fingerprint:
            self._by_partition.setdefault(partition, deque()).append(lead_key)
            self.found += 1

    def take(self, count: int, partitions: Iterable[int]) -> list[tuple[bytes, int]]:
        """Up to `count` leads of `partitions`, (lead, partition), out of the list."""
        taken: list[tuple[bytes, int]] = []
        for partition in sorted(partitions):
            leads = self._by_partition.get(partition)
            while leads and len(taken) < count:
                taken.append((leads.popleft(), partition))
        return taken

    def clear(self) -> None:
        self._by_partition.clear()
        self.found = 0
