"""What a rules change would do: one history replayed under two rule sets, compared.

`compare` reads the messages once and applies each under the baseline and the
proposed rules (two `Replay`s, the same stitching), then reports, as of the
same moment for both: the leads per stage, the leads whose stage differs (with
the rules whose points differ most for them), the leads that ever reached mql
and sql and the conversion between them, the transitions per ISO week, per rule
the messages it matched and the points it holds, and the score distributions.
The report is plain data (`WhatIf.model_dump`); `streams.cli.reports` renders it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from scoring.messages import Delete, Message
from scoring.outputs import ScoreSnapshot, Transition
from scoring.replay import BadLine, Replay
from scoring.rules import Rules, rule_changes
from scoring.state import Stage

BINS = 10  # histogram bins per score
CHANGED_RULES = 3  # rules named per lead that changes stage


class RuleFigures(BaseModel):
    """One rule under one rule set (absent from it: None)."""

    matched: int = Field(description="engagement: messages it matched; fit: leads it matches")
    points: float = Field(description="its points over every lead as of the moment (decayed)")


class RuleRow(BaseModel):
    rule_id: str
    kind: str
    baseline: RuleFigures | None
    proposed: RuleFigures | None


class Histogram(BaseModel):
    edges: list[float] = Field(description="BINS + 1 bin edges; the last bin includes its end")
    baseline: list[int]
    proposed: list[int]


class Side(BaseModel):
    """The history under one rule set."""

    rules_version: str
    stages: dict[str, int] = Field(description="leads per stage as of the moment")
    mql_leads: int = Field(description="leads that reached mql at some point")
    sql_leads: int = Field(description="leads that reached sql at some point")
    mql_to_sql: float | None = Field(description="share of the mql leads that reached sql")
    transitions: int
    median_fit: float
    median_engagement: float


class StageChange(BaseModel):
    lead_id: str
    baseline: Stage
    proposed: Stage
    fit: tuple[float, float] = Field(description="baseline, proposed")
    engagement: tuple[float, float] = Field(description="baseline, proposed")
    rules: list[str] = Field(
        description="the rules whose points differ most for the lead; none: the settings "
        "that differ (thresholds, decay)"
    )


class WhatIf(BaseModel):
    changes: list[str] = Field(description="what differs between the rule sets, a line each")
    as_of: datetime | None
    messages: int
    bad_lines: int
    leads: int
    baseline: Side
    proposed: Side
    moves: dict[str, int] = Field(description="'from>to' -> leads: the stage changes")
    changed: list[StageChange] = Field(
        description="the leads whose stage differs, most moved first"
    )
    weeks: dict[str, dict[str, dict[str, int]]] = Field(
        description="ISO week -> rule set -> transitions into each stage"
    )
    rules: list[RuleRow]
    fit_histogram: Histogram
    engagement_histogram: Histogram


def compare(
    lines: Iterable[bytes | str],
    baseline: Rules,
    proposed: Rules,
    *,
    at: float | None = None,
    stitch: bool = True,
    on_bad_line: Callable[[BadLine], None] | None = None,
) -> WhatIf:
    """Replay `lines` under both rule sets, in one pass over them, and compare."""
    before = Replay(baseline, at=at, stitch=stitch)
    after = Replay(proposed, at=at, stitch=stitch)
    sides: tuple[tuple[Replay, list[Transition], Counter[str]], ...] = (
        (before, [], Counter()),
        (after, [], Counter()),
    )
    for item in before.messages(lines):
        if isinstance(item, BadLine):
            if on_bad_line is not None:
                on_bad_line(item)
            continue
        for replay, transitions, matched in sides:
            _apply(replay, item, transitions, matched)
    after.latest, after.applied = before.latest, before.applied
    finished = [_finish(replay, transitions) for replay, transitions, _ in sides]
    (snaps_before, all_before), (snaps_after, all_after) = finished
    moment = before.as_of()
    changes = rule_changes(baseline, proposed)
    settings = [
        line.split(":")[0] for line in changes if not line.startswith(("fit ", "engagement "))
    ]
    return WhatIf(
        changes=changes,
        as_of=None if moment is None else datetime.fromtimestamp(moment, UTC),
        messages=before.applied,
        bad_lines=before.bad,
        leads=len(snaps_before.keys() | snaps_after.keys()),
        baseline=_side(baseline, snaps_before, all_before),
        proposed=_side(proposed, snaps_after, all_after),
        moves=_moves(snaps_before, snaps_after),
        changed=_changed(snaps_before, snaps_after, settings),
        weeks=_weeks(all_before, all_after),
        rules=_rules(baseline, proposed, sides[0][2], sides[1][2], snaps_before, snaps_after),
        fit_histogram=_histogram(snaps_before, snaps_after, lambda s: s.fit_score),
        engagement_histogram=_histogram(snaps_before, snaps_after, lambda s: s.engagement_score),
    )


def _apply(
    replay: Replay, message: Message, transitions: list[Transition], matched: Counter[str]
) -> None:
    if not isinstance(message, Delete):
        for rule in replay.rules.engagement_rules_matching(message):
            matched[rule.id] += 1
    for output in replay.apply(message):
        if isinstance(output, Transition):
            transitions.append(output)


def _finish(
    replay: Replay, transitions: list[Transition]
) -> tuple[dict[str, ScoreSnapshot], list[Transition]]:
    snapshots, by_time = replay.finish()
    later = [item for item in by_time if isinstance(item, Transition)]
    return {snap.lead_id: snap for snap in snapshots}, [*transitions, *later]


def _side(rules: Rules, snapshots: dict[str, ScoreSnapshot], transitions: list[Transition]) -> Side:
    stages = Counter(snap.stage.value for snap in snapshots.values())
    reached = {stage: {t.lead_id for t in transitions if t.to_stage is stage} for stage in Stage}
    mql, sql = reached[Stage.MQL], reached[Stage.SQL]
    return Side(
        rules_version=rules.version,
        stages={stage.value: stages.get(stage.value, 0) for stage in Stage},
        mql_leads=len(mql),
        sql_leads=len(sql),
        mql_to_sql=len(mql & sql) / len(mql) if mql else None,
        transitions=len(transitions),
        median_fit=_median([snap.fit_score for snap in snapshots.values()]),
        median_engagement=_median([snap.engagement_score for snap in snapshots.values()]),
    )


def _moves(before: dict[str, ScoreSnapshot], after: dict[str, ScoreSnapshot]) -> dict[str, int]:
    moves = Counter(
        f"{b.stage}>{after[lead].stage}"
        for lead, b in _both(before, after)
        if after[lead].stage is not b.stage
    )
    return dict(sorted(moves.items()))


def _changed(
    before: dict[str, ScoreSnapshot], after: dict[str, ScoreSnapshot], settings: list[str]
) -> list[StageChange]:
    """The leads whose stage differs, each with the rules whose points differ most for it,
    or (none differing) the settings that differ, such as the thresholds."""
    changed = []
    for lead, b in _both(before, after):
        a = after[lead]
        if a.stage is b.stage:
            continue
        old, new = _points(b), _points(a)
        differences = {rule: abs(new.get(rule, 0.0) - old.get(rule, 0.0)) for rule in old | new}
        ranked = (
            _disqualifiers(a) or _disqualifiers(b)
            if a.explanation.disqualified_by != b.explanation.disqualified_by
            else []
        )
        ranked += sorted(
            (rule for rule, d in differences.items() if d), key=lambda r: (-differences[r], r)
        )
        changed.append(
            StageChange(
                lead_id=lead,
                baseline=b.stage,
                proposed=a.stage,
                fit=(b.fit_score, a.fit_score),
                engagement=(b.engagement_score, a.engagement_score),
                rules=ranked[:CHANGED_RULES] or settings[:CHANGED_RULES],
            )
        )
    changed.sort(key=lambda c: (-_moved(c), c.lead_id))
    return changed


def _disqualifiers(snap: ScoreSnapshot) -> list[str]:
    """The fit rules that disqualify the lead (none: it is not disqualified by rules)."""
    named = snap.explanation.disqualified_by
    return [] if named in (None, "sales") else named.split(", ")


def _moved(change: StageChange) -> float:
    return abs(change.fit[1] - change.fit[0]) + abs(change.engagement[1] - change.engagement[0])


def _points(snap: ScoreSnapshot) -> dict[str, float]:
    explanation = snap.explanation
    return {rule.rule_id: rule.points for rule in (*explanation.fit, *explanation.engagement)}


def _both(
    before: dict[str, ScoreSnapshot], after: dict[str, ScoreSnapshot]
) -> Iterator[tuple[str, ScoreSnapshot]]:
    return ((lead, snap) for lead, snap in before.items() if lead in after)


def _weeks(
    before: list[Transition], after: list[Transition]
) -> dict[str, dict[str, dict[str, int]]]:
    weeks: dict[str, dict[str, Counter[str]]] = {}
    for name, transitions in (("baseline", before), ("proposed", after)):
        for t in transitions:
            year, week, _ = t.occurred_at.isocalendar()
            side = weeks.setdefault(
                f"{year}-W{week:02d}", {"baseline": Counter(), "proposed": Counter()}
            )
            side[name][t.to_stage.value] += 1
    return {
        week: {name: dict(c) for name, c in sides.items()} for week, sides in sorted(weeks.items())
    }


def _rules(
    baseline: Rules,
    proposed: Rules,
    matched_before: Counter[str],
    matched_after: Counter[str],
    before: dict[str, ScoreSnapshot],
    after: dict[str, ScoreSnapshot],
) -> list[RuleRow]:
    def figures(
        rules: Rules, matched: Counter[str], snaps: dict[str, ScoreSnapshot]
    ) -> dict[tuple[str, str], RuleFigures]:
        points: dict[str, float] = {}
        leads: Counter[str] = Counter()
        for snap in snaps.values():
            for share in snap.explanation.fit:
                points[share.rule_id] = points.get(share.rule_id, 0.0) + share.points
                leads[share.rule_id] += 1
            for share in snap.explanation.engagement:
                points[share.rule_id] = points.get(share.rule_id, 0.0) + share.points
        table = {}
        for fit in rules.spec.fit.rules:
            table["fit", fit.id] = RuleFigures(
                matched=leads[fit.id], points=round(points.get(fit.id, 0.0), 2)
            )
        for rule in rules.spec.engagement.rules:
            table["engagement", rule.id] = RuleFigures(
                matched=matched[rule.id], points=round(points.get(rule.id, 0.0), 2)
            )
        return table

    old = figures(baseline, matched_before, before)
    new = figures(proposed, matched_after, after)
    keys = list(dict.fromkeys([*old, *new]))
    return [
        RuleRow(
            rule_id=rule, kind=kind, baseline=old.get((kind, rule)), proposed=new.get((kind, rule))
        )
        for kind, rule in keys
    ]


def _histogram(
    before: dict[str, ScoreSnapshot],
    after: dict[str, ScoreSnapshot],
    score: Callable[[ScoreSnapshot], float],
) -> Histogram:
    old = [score(snap) for snap in before.values()]
    new = [score(snap) for snap in after.values()]
    low = min([*old, *new], default=0.0)
    high = max([*old, *new], default=0.0)
    if high <= low:
        high = low + 1.0
    width = (high - low) / BINS
    edges = [round(low + i * width, 2) for i in range(BINS + 1)]

    def counts(values: list[float]) -> list[int]:
        bins = [0] * BINS
        for value in values:
            bins[min(BINS - 1, int((value - low) / width))] += 1
        return bins

    return Histogram(edges=edges, baseline=counts(old), proposed=counts(new))


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0
