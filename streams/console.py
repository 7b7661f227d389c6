"""What leadscore prints for people: one readable line per output record."""

from __future__ import annotations

from scoring import SalesAlert, ScoreSnapshot, Transition
from scoring.outputs import SALES_ALERT_ADAPTER, DeadLetter, FollowUp, LeadDeletion, LeadMerge
from streams.settings import OUTPUT_TOPICS

ARROW = "→"


def transition_line(t: Transition) -> str:
    top = ", ".join(f"{r.rule_id} {r.points:+g}" for r in t.top_rules[:3])
    return (
        f"{t.occurred_at:%Y-%m-%d %H:%M:%S}  {t.lead_id:<16} {t.from_stage:>12} {ARROW} "
        f"{t.to_stage:<12} fit {t.fit_score:>5.1f}  engagement {t.engagement_score:>6.1f}  "
        f"{t.reason}  [{top}]"
    )


def alert_line(alert: SalesAlert | FollowUp) -> str:
    kind = "SQL" if alert.kind == "sql" else alert.kind.removeprefix("sla_").upper()
    return f"{alert.occurred_at:%Y-%m-%d %H:%M:%S}  {kind:<10}  {alert.summary}"


def score_line(s: ScoreSnapshot) -> str:
    return (
        f"{s.as_of:%Y-%m-%d %H:%M:%S}  {s.lead_id:<16} {s.stage:<12} "
        f"fit {s.fit_score:>5.1f}  engagement {s.engagement_score:>6.1f}"
    )


def dead_letter_line(d: DeadLetter) -> str:
    return (
        f"{d.rejected_at:%Y-%m-%d %H:%M:%S}  {d.source_topic}[{d.source_partition}]"
        f"@{d.source_offset}  {d.reason}"
    )


def deletion_line(d: LeadDeletion) -> str:
    absorbed = f" (and {', '.join(d.absorbed_ids)})" if d.absorbed_ids else ""
    return f"{d.occurred_at:%Y-%m-%d %H:%M:%S}  {d.lead_id}{absorbed} deleted"


def merge_line(m: LeadMerge) -> str:
    return f"{m.occurred_at:%Y-%m-%d %H:%M:%S}  {m.merged_id} merged into {m.survivor_id} ({m.via})"


def render(kind: str, value: bytes | None, key: bytes | None = None) -> str:
    """The line for a record of one of the output topics (`kind` as in `OUTPUTS`)."""
    if value is None:  # a tombstone: the lead was deleted or merged into another
        return f"{(key or b'').decode(errors='replace')}  (gone)"
    if kind == "transitions":
        return transition_line(Transition.model_validate_json(value))
    if kind == "alerts":
        return alert_line(SALES_ALERT_ADAPTER.validate_json(value))
    if kind == "scores":
        return score_line(ScoreSnapshot.model_validate_json(value))
    if kind == "deletions":
        return deletion_line(LeadDeletion.model_validate_json(value))
    if kind == "merges":
        return merge_line(LeadMerge.model_validate_json(value))
    return dead_letter_line(DeadLetter.model_validate_json(value))


# The output topics' kinds, as `tail --output` names them: "transitions", "alerts", ...
OUTPUTS = tuple(name.removesuffix("_topic") for name in OUTPUT_TOPICS)
