"""The hottest leads of this worker's partitions, by engagement, without scanning the table.

Engagement decays at one rate for every lead, so the order of two leads by
engagement never changes with time alone: a lead ranks by log2 of its
engagement at its clock plus clock / half-life, a number fixed until its next
message. The index keeps that rank per lead and stage, updated as leads
change, rebuilt after a rebalance.
"""

from __future__ import annotations

import heapq
import math
from typing import NamedTuple

from scoring import LeadState, Rules, decay


class HotLead(NamedTuple):  # a tuple: one is built per changed lead
    lead_id: str
    stage: str
    rank: float
    fit_score: float
    engagement: float  # at `clock`
    clock: float

    def engagement_at(self, moment: float, rules: Rules) -> float:
        return decay(self.engagement, moment - self.clock, rules)


class HotLeads:
    def __init__(self) -> None:
        self._by_stage: dict[str, dict[bytes, HotLead]] = {}
        self._stage_of: dict[bytes, str] = {}

    def update(self, lead_key: bytes, state: LeadState, rules: Rules) -> None:
        old = self._stage_of.get(lead_key)
        if old is not None and old != state.stage:
            self._by_stage[old].pop(lead_key, None)
        rank = _rank(state, rules)
        if rank is None:
            self._stage_of.pop(lead_key, None)
            self._by_stage.get(state.stage, {}).pop(lead_key, None)
            return
        self._stage_of[lead_key] = state.stage
        assert state.clock is not None
        self._by_stage.setdefault(state.stage, {})[lead_key] = HotLead(
            lead_id=state.lead_id,
            stage=state.stage,
            rank=rank,
            fit_score=state.fit_score,
            engagement=sum(state.engagement.values()),
            clock=state.clock,
        )

    def forget(self, lead_key: bytes) -> None:
        stage = self._stage_of.pop(lead_key, None)
        if stage is not None:
            self._by_stage[stage].pop(lead_key, None)

    def top(self, stage: str, limit: int) -> list[HotLead]:
        leads = self._by_stage.get(stage, {}).values()
        return heapq.nlargest(limit, leads, key=lambda hot: hot.rank)

    def clear(self) -> None:
        self._by_stage.clear()
        self._stage_of.clear()


def _rank(state: LeadState, rules: Rules) -> float | None:
    """Time-invariant order key by engagement; None for leads with none to rank."""
    total = sum(state.engagement.values())
    if total <= 0 or state.clock is None:
        return None
    if rules.half_life is None:
        return math.log2(total)
    return math.log2(total) + state.clock / rules.half_life
