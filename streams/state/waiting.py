"""The SQLs of this worker's partitions that wait for a rep, most urgent first.

A lead waits from its change to sql until a rep acts on it (or it leaves
sql): exactly the leads whose state holds an SLA (`scoring.state.Sla`). The
index keeps each one's due and escalation instants, computed once per
handoff, updated as leads change and rebuilt after a rebalance, so the
dashboard's panel needs no scan of the table.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

from scoring import LeadState, Rules


class WaitingSql(NamedTuple):  # a tuple: one is built per changed SQL
    lead_id: str
    qualified_at: float
    due_at: float
    escalate_at: float | None
    sql_transition_id: str
    fit_score: float
    engagement: float  # at `clock`
    clock: float


class WaitingSqls:
    def __init__(self) -> None:
        self._waiting: dict[bytes, WaitingSql] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def update(self, lead_key: bytes, state: LeadState, rules: Rules) -> None:
        sla = state.sla
        if sla is None or rules.sales is None or state.clock is None:
            self._waiting.pop(lead_key, None)
            return
        known = self._waiting.get(lead_key)
        if known is not None and known.sql_transition_id == sla.transition_id:
            due, escalation = known.due_at, known.escalate_at  # the same handoff
        else:
            due, escalation = rules.sla_instants(sla.qualified_at)
        self._waiting[lead_key] = WaitingSql(
            lead_id=state.lead_id,
            qualified_at=sla.qualified_at,
            due_at=due,
            escalate_at=escalation,
            sql_transition_id=sla.transition_id,
            fit_score=state.fit_score,
            engagement=sum(state.engagement.values()),
            clock=state.clock,
        )

    def forget(self, lead_key: bytes) -> None:
        self._waiting.pop(lead_key, None)

    def most_urgent(self, limit: int) -> list[WaitingSql]:
        """The `limit` leads due first (the longest overdue lead comes first)."""
        return heapq.nsmallest(limit, self._waiting.values(), key=lambda lead: lead.due_at)

    def overdue(self, now: float) -> int:
        return sum(1 for lead in self._waiting.values() if lead.due_at <= now)

    def clear(self) -> None:
        self._waiting.clear()
