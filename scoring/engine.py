"""The scoring core: fold one message into a lead's state, or let time pass.

Pure functions of (state, message or instant, rules); time is event time in
epoch seconds, passed in, never read from a clock. The order of work within
one message follows the design: decay up to the message, apply it, then
disqualification, sales events, and the thresholds.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from scoring.calendar import working_seconds_between
from scoring.messages import Group, Identify, Message, SalesEvent, Track, qualification_update
from scoring.outputs import (
    TOP_RULES,
    FollowUp,
    FollowUpKind,
    ScoreSnapshot,
    Transition,
    follow_up_id,
    transition_id,
)
from scoring.rules import Rules
from scoring.state import (
    DEDUPE_WINDOW,
    LIMIT_HISTORY,
    MAX_ANONYMOUS_JOINS,
    MAX_LINKS,
    MAX_MERGES,
    Disqualifier,
    Identity,
    LeadState,
    Position,
    Sla,
    Stage,
    applied_already,
    has_seen,
    message_digest,
    named_in,
    new_lead,
    remember,
)

_TRAIT_MESSAGES = (Identify, Group)
_ABSENT = object()

# What a message or the passing of time causes: stage changes, and the sales follow-up.
Output = Transition | FollowUp


def apply_message(
    state: LeadState | None, message: Message, rules: Rules, position: Position | None = None
) -> tuple[LeadState, list[Output]]:
    """The lead's state after `message`, and the stage changes and follow-ups it caused
    (in order: an SLA that ran out before the message's time comes first).

    `state` is None for a lead never seen before. A message already applied
    to the lead (same messageId, within the dedupe window) changes nothing.
    `position` is where the message was read: a message at or before the last
    position applied from its source is a re-read and changes nothing; any
    other is remembered at its position, a resend too.
    """
    lead = state if state is not None else new_lead(message.lead_id, message.userId is not None)
    if position is not None and applied_already(lead, position):
        return lead, []
    digest = message_digest(message.messageId)
    if has_seen(lead.seen, digest):
        if position is None:
            return lead, []
        return replace(lead, applied={**lead.applied, position[0]: position[1]}), []
    work = _Work.of(lead, rules)
    if lead.engagement and lead.fit_fingerprint != rules.fingerprint:
        work.reweight()  # the rules changed since the lead's last message
    at = message.at
    if work.clock is None:
        work.clock = work.first_at = at
    elif at > work.clock:
        if work.sla is not None:
            work.follow_up_until(at)
        work.demote_on_decay_until(at)
        work.decay_to(at)
    elif work.first_at is None or at < work.first_at:
        work.first_at = at

    previous_disqualifiers = lead.disqualifiers
    if isinstance(message, _TRAIT_MESSAGES):
        work.merge_traits(message, at)
    if work.fit_fingerprint != rules.fingerprint:
        work.evaluate_fit()
    work.fire_engagement_rules(message, at)
    if work.sla is not None and isinstance(message, Track) and message.event in rules.acting_events:
        work.acted(message, at)
    sales_event = _sales_event(message)
    if sales_event is SalesEvent.QUALIFICATION_UPDATED:
        framework, update = qualification_update(message.properties)  # type: ignore[union-attr]
        work.criteria = {
            **work.criteria,
            framework: {**work.criteria.get(framework, {}), **update},
        }
        work.criteria_times = {**work.criteria_times, framework: at}

    note = message.properties.get("reason") if sales_event is SalesEvent.LEAD_REJECTED else None  # type: ignore[union-attr]
    work.disqualification(previous_disqualifiers, sales_event, message.messageId, note)
    if sales_event is SalesEvent.LEAD_RECYCLED:
        if work.stage is not Stage.LEAD:
            work.move(Stage.LEAD, "recycled by sales", message.messageId)
            work.disqualified_by = None
    else:
        if sales_event is SalesEvent.LEAD_ACCEPTED and work.stage in (Stage.LEAD, Stage.MQL):
            work.move(Stage.SQL, "accepted by sales", message.messageId)
        work.thresholds(message.messageId)

    work.seen = remember(lead.seen, digest)
    if position is not None:
        work.applied = {**lead.applied, position[0]: position[1]}
    return work.state(), work.transitions


def merge(
    survivor: LeadState, absorbed: LeadState, rules: Rules, message_id: str
) -> tuple[LeadState, list[Output]]:
    """The survivor after absorbing another lead of the same person, and the stage
    changes that caused (transitions of the survivor whose reasons name the absorbed id).

    The result is what one lead would be had it received both leads' messages:
    engagement adds up (each side decayed from its own clock), limits hold over the
    combined firings, each trait and framework takes the newer value by event time,
    the dedupe windows join, and the clock is the later one. A sales decision sticks:
    a lead rejected by sales stays disqualified, one sales qualified stays sql. Then
    the stage is evaluated at the merged clock, as after a message (`message_id`, the
    message that linked the two).
    """
    if survivor.identity is not None and absorbed.lead_id in survivor.identity.absorbed:
        return survivor, []  # handed over before: a resend changes nothing
    if survivor.clock is None or absorbed.clock is None:
        identity = _joined(survivor, absorbed)
        applied = _joined_positions(survivor, absorbed, identity.absorbed)
        if survivor.clock is None:
            moved = replace(absorbed, lead_id=survivor.lead_id, identity=identity, applied=applied)
            return moved, []
        return replace(survivor, identity=identity, applied=applied), []
    work = _Work.of(survivor, rules)
    work.merging = absorbed.lead_id
    if survivor.fit_fingerprint != rules.fingerprint:
        work.reweight()
    engagement, points, firings = absorbed.engagement, absorbed.engagement_points, absorbed.firings
    if absorbed.fit_fingerprint != rules.fingerprint:
        engagement, points, firings = _reweighted(absorbed, rules)
    clock = max(survivor.clock, absorbed.clock)
    half_life = rules.half_life
    mine = _decayed(work.engagement, clock - survivor.clock, half_life)
    theirs = _decayed(engagement, clock - absorbed.clock, half_life)
    work.engagement_points = {**points, **work.engagement_points}
    work.clock = clock
    work.engagement = {
        rule: mine.get(rule, 0.0) + theirs.get(rule, 0.0) for rule in {**mine, **theirs}
    }
    work.combine_firings(replace(absorbed, firings=firings))
    work.traits, work.trait_times = _newer_traits(survivor, absorbed)
    work.criteria, work.criteria_times = _newer_criteria(survivor, absorbed)
    work.seen = (absorbed.seen + survivor.seen)[-DEDUPE_WINDOW * 8 :]
    work.identity = _joined(survivor, absorbed)
    work.applied = _joined_positions(survivor, absorbed, work.identity.absorbed)
    work.first_at = min(at for at in (survivor.first_at, absorbed.first_at) if at is not None)
    work.sla = _earlier_sla(survivor.sla, absorbed.sla)
    work.evaluate_fit()
    if "sales" in (survivor.disqualified_by, absorbed.disqualified_by):
        if work.stage is not Stage.DISQUALIFIED:
            work.move(Stage.DISQUALIFIED, "rejected by sales", message_id)
        work.disqualified_by = "sales"
    elif Stage.SQL in (survivor.stage, absorbed.stage):
        if work.stage is not Stage.SQL:
            work.move(Stage.SQL, "sales qualified", message_id)
            work.disqualified_by = None
    else:
        work.disqualification(survivor.disqualifiers, None, message_id)
        work.thresholds(message_id)
    if work.stage is not Stage.SQL:
        work.sla = None  # no rep is due on a lead that is not sql
    return work.state(), work.transitions


def _joined_positions(
    survivor: LeadState, absorbed: LeadState, ids: tuple[str, ...]
) -> dict[str, int]:
    """The survivor's positions, and the absorbed lead's under its id (`position_of`): its
    messages read again later are forwarded here and must be told apart from the
    survivor's own. Only those of the absorbed ids kept (`ids`)."""
    theirs = {
        source if named_in(source) is not None else f"{absorbed.lead_id}|{source}": position
        for source, position in absorbed.applied.items()
    }
    kept = set(ids)
    applied = dict(survivor.applied)
    for source, position in theirs.items():
        if named_in(source) in kept:
            applied[source] = max(position, applied.get(source, position))
    return applied


def _joined(survivor: LeadState, absorbed: LeadState) -> Identity:
    mine = survivor.identity or Identity()
    theirs = absorbed.identity or Identity()
    ids = (*mine.absorbed, absorbed.lead_id, *theirs.absorbed)
    return Identity(
        identified=mine.identified or theirs.identified,
        absorbed=ids[-MAX_MERGES:],
        joins=tuple(sorted((*mine.joins, *theirs.joins)))[-MAX_ANONYMOUS_JOINS:],
        links=tuple(dict.fromkeys((*theirs.links, *mine.links)))[-MAX_LINKS:],
    )


def _newer_traits(a: LeadState, b: LeadState) -> tuple[dict[str, Any], dict[str, float]]:
    """Per trait (and per company trait), the value written later by event time; a tie
    or a time unknown keeps the first lead's."""
    traits = {**b.traits, **a.traits}
    times = {**b.trait_times, **a.trait_times}
    company = {**b.traits.get("company", {}), **a.traits.get("company", {})}
    for name, at in b.trait_times.items():
        if at <= a.trait_times.get(name, -math.inf):
            continue
        times[name] = at
        if name.startswith("company."):
            key = name.removeprefix("company.")
            if key in b.traits.get("company", {}):
                company[key] = b.traits["company"][key]
        elif name in b.traits:
            traits[name] = b.traits[name]
    if company:
        traits["company"] = company
    return traits, times


def _newer_criteria(
    a: LeadState, b: LeadState
) -> tuple[dict[str, dict[str, bool]], dict[str, float]]:
    criteria = {**b.criteria, **a.criteria}
    times = {**b.criteria_times, **a.criteria_times}
    for framework, at in b.criteria_times.items():
        if at > a.criteria_times.get(framework, -math.inf):
            criteria[framework] = {**a.criteria.get(framework, {}), **b.criteria[framework]}
            times[framework] = at
    return criteria, times


def advance(state: LeadState, until: float, rules: Rules) -> tuple[LeadState, list[Output]]:
    """Let event time pass to `until` with no message: an mql lead whose engagement
    decays across the exit line is demoted at the crossing instant (and its
    clock moves there); an SQL whose SLA runs out by `until` is breached, and
    escalated, at those instants (its clock stays). Every other state comes back
    unchanged."""
    crossing = next_crossing(state, rules)
    if crossing is None or crossing > until:
        return state, []
    work = _Work.of(state, rules)
    if work.sla is not None:
        work.follow_up_until(until)
    work.demote_on_decay_until(until)
    return work.state(), work.transitions


def bring_to_rules(state: LeadState, until: float, rules: Rules) -> tuple[LeadState, list[Output]]:
    """A lead scored under earlier rules, brought to `rules` at `until` with no message:
    what its next message would do before the message's own effect. Engagement is
    re-weighted (exact for a points change, see `_reweighted`), time passes to `until`
    (an SLA running out, a decay crossing, on the way), fit is evaluated again, and the
    stage with it: a change is a transition of trigger `rules`, its id the same
    whenever the same rules bring it. A lead under `rules` already comes back as is."""
    if state.clock is None or state.fit_fingerprint == rules.fingerprint:
        return state, []
    work = _Work.of(state, rules)
    if state.engagement:
        work.reweight()
    if until > state.clock:
        if work.sla is not None:
            work.follow_up_until(until)
        work.demote_on_decay_until(until)
        work.decay_to(until)
    work.rules_change = True
    previous_disqualifiers = work.disqualifiers
    work.evaluate_fit()
    work.disqualification(previous_disqualifiers, None, None)
    work.thresholds(None)
    return work.state(), work.transitions


def next_crossing(state: LeadState, rules: Rules) -> float | None:
    """The next instant at which time alone changes this lead, in epoch seconds: decay
    taking an mql lead below the exit line, or an SQL's SLA breach or escalation; else
    None."""
    if state.clock is None:
        return None
    if state.sla is not None:
        return _next_follow_up(state.sla, rules)
    if state.stage is not Stage.MQL:
        return None
    return _crossing(sum(state.engagement.values()), state.clock, rules)


def _next_follow_up(sla: Sla, rules: Rules) -> float | None:
    if rules.sales is None or sla.level >= 2:
        return None
    due, escalation = rules.sla_instants(sla.qualified_at)
    return due if sla.level == 0 else escalation


def _earlier_sla(a: Sla | None, b: Sla | None) -> Sla | None:
    """Of two leads merging, the SLA that started first (a rep owes the older handoff)."""
    if a is None or b is None:
        return a or b
    return a if a.qualified_at <= b.qualified_at else b


def snapshot(state: LeadState, rules: Rules, at: float | None = None) -> ScoreSnapshot:
    """Scores and explanation as of `at` (default: the lead's clock; never before it).

    The stage is the state's: to see decay demotions up to `at`, `advance` first.
    """
    return ScoreSnapshot.model_validate(snapshot_data(state, rules, at))


def snapshot_json(state: LeadState, rules: Rules, at: float | None = None) -> bytes:
    """`snapshot(...).model_dump_json()`, byte for byte, without building the models:
    the stream publishes one per changed lead, and the models cost five times more."""
    return orjson.dumps(snapshot_data(state, rules, at), option=orjson.OPT_UTC_Z)


def snapshot_data(state: LeadState, rules: Rules, at: float | None = None) -> dict[str, Any]:
    """The fields of `snapshot` as plain data, in the model's order."""
    clock = state.clock if state.clock is not None else (at or 0.0)
    moment = max(at, clock) if at is not None else clock
    engagement = _decayed(state.engagement, moment - clock, rules.half_life)
    return {
        "lead_id": state.lead_id,
        "stage": state.stage,
        "as_of": _datetime(moment),
        "fit_score": _round(state.fit_score),
        "engagement_score": _round(sum(engagement.values())),
        "explanation": _explain(state, engagement, rules),
        "rules_version": scored_under(state, rules),
        "absorbed_ids": list(state.identity.absorbed) if state.identity is not None else [],
    }


def scored_under(state: LeadState, rules: Rules) -> str:
    """The rules version a lead's scores come from: `rules`', or one before them."""
    if state.fit_fingerprint in ("", rules.fingerprint):
        return rules.version
    return f"before {rules.version}"


_SALES_EVENTS = {event.value: event for event in SalesEvent}


def decay(points: float, elapsed: float, rules: Rules) -> float:
    """Engagement points `elapsed` seconds of event time later (no time passes below 0)."""
    if rules.half_life is None or elapsed <= 0:
        return points
    return float(points * 0.5 ** (elapsed / rules.half_life))


def _sales_event(message: Message) -> SalesEvent | None:
    return _SALES_EVENTS.get(message.event) if isinstance(message, Track) else None


def _reweighted(
    lead: LeadState | _Work, rules: Rules
) -> tuple[dict[str, float], dict[str, float], dict[str, tuple[float, ...]]]:
    """The lead's engagement totals, the points they are counted at, and its counted
    firings, under `rules`: a total counted at other points than the rule's now is
    scaled to them, exactly (the same firings, each decayed the same: the total is
    linear in the points); the rules no longer there count no more. A total counted
    at 0 points stays 0: its firings left no trace to scale."""
    basis = lead.engagement_points
    totals: dict[str, float] = {}
    points: dict[str, float] = {}
    for rule_id, total in lead.engagement.items():
        rule = rules.engagement_rule(rule_id)
        if rule is None:
            continue
        was = basis.get(rule_id, rule.points)
        totals[rule_id] = total * (rule.points / was) if was and was != rule.points else total
        points[rule_id] = rule.points
    firings = {
        rule_id: times for rule_id, times in lead.firings.items() if rules.engagement_rule(rule_id)
    }
    return totals, points, firings


def _crossing(total: float, clock: float, rules: Rules) -> float | None:
    half_life = rules.half_life
    line = rules.stages.mql_exit_line
    if half_life is None or line <= 0:
        return None
    if total <= line:  # on the line: the next instant of decay takes it below
        return clock
    return clock + half_life * math.log2(total / line)


def _decayed(
    engagement: dict[str, float], elapsed: float, half_life: float | None
) -> dict[str, float]:
    if half_life is None or elapsed == 0 or not engagement:
        return engagement
    factor = 0.5 ** (elapsed / half_life)
    return {rule_id: points * factor for rule_id, points in engagement.items()}


def _datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _brief(note: object, limit: int = 200) -> str:
    text = " ".join(str(note).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _round(points: float) -> float:
    return round(points, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


def _explain(
    state_or_work: LeadState | _Work, engagement: dict[str, float], rules: Rules
) -> dict[str, Any]:
    """An `Explanation` as plain data."""
    fit = [
        {"rule_id": rule_id, "kind": "fit", "points": _round(points)}
        for rule_id, points in state_or_work.fit.items()
    ]
    scored = [
        {"rule_id": rule_id, "kind": "engagement", "points": _round(points)}
        for rule_id, points in engagement.items()
    ]
    scored.sort(key=_weight)
    disqualified_by = None
    if state_or_work.stage is Stage.DISQUALIFIED:
        disqualified_by = (
            ", ".join(state_or_work.disqualifiers)
            if state_or_work.disqualified_by == "rules"
            else "sales"
        )
    return {
        "fit": fit,
        "engagement": scored,
        "disqualified_by": disqualified_by,
        "criteria": _criteria_state(state_or_work.criteria, rules),
    }


def _weight(rule_points: dict[str, Any]) -> tuple[float, str]:
    """Sort key: the rules that move the score most first; ties by rule id (not by the
    order the state holds them in, which a merge changes)."""
    points: float = rule_points["points"]
    return -abs(points), rule_points["rule_id"]


def _criteria_state(criteria: dict[str, dict[str, bool]], rules: Rules) -> dict[str, Any]:
    """A `CriteriaState` as plain data."""
    qualification = rules.qualification
    answers = criteria.get(qualification.framework, {})
    met = [c for c in qualification.criteria if answers.get(c) is True]
    return {
        "framework": qualification.framework,
        "met": met,
        "unmet": [c for c in qualification.criteria if answers.get(c) is False],
        "unknown": [c for c in qualification.criteria if c not in answers],
        "require": qualification.required,
        "ready": len(met) >= qualification.required,
    }


@dataclass(slots=True)
class _Work:
    """The lead being worked on during one call: mutable here, frozen again by `state()`."""

    rules: Rules
    lead_id: str
    stage: Stage
    clock: float | None
    traits: dict[str, Any]
    fit: dict[str, float]
    disqualifiers: tuple[str, ...]
    fit_fingerprint: str
    disqualified_by: Disqualifier
    criteria: dict[str, dict[str, bool]]
    engagement: dict[str, float]
    firings: dict[str, tuple[float, ...]]
    limit_horizons: dict[str, float]
    seen: bytes
    applied: dict[str, int]
    trait_times: dict[str, float]
    criteria_times: dict[str, float]
    first_at: float | None
    identity: Identity | None
    sla: Sla | None
    engagement_points: dict[str, float]
    transitions: list[Output] = field(default_factory=list)
    # While merging: the absorbed lead's id (transition ids and reasons name it).
    merging: str | None = None
    # While bringing the lead to new rules with no message (`bring_to_rules`).
    rules_change: bool = False

    @classmethod
    def of(cls, lead: LeadState, rules: Rules) -> _Work:
        # Positional, in field order: this runs for every message.
        return cls(
            rules,
            lead.lead_id,
            lead.stage,
            lead.clock,
            lead.traits,
            lead.fit,
            lead.disqualifiers,
            lead.fit_fingerprint,
            lead.disqualified_by,
            lead.criteria,
            lead.engagement,
            lead.firings,
            lead.limit_horizons,
            lead.seen,
            lead.applied,
            lead.trait_times,
            lead.criteria_times,
            lead.first_at,
            lead.identity,
            lead.sla,
            lead.engagement_points,
        )

    def state(self) -> LeadState:
        return LeadState(
            self.lead_id,
            self.stage,
            self.clock,
            self.traits,
            self.fit,
            self.disqualifiers,
            self.fit_fingerprint,
            self.disqualified_by,
            self.criteria,
            self.engagement,
            self.firings,
            self.limit_horizons,
            self.seen,
            self.applied,
            self.trait_times,
            self.criteria_times,
            self.first_at,
            self.identity,
            self.sla,
            self.engagement_points,
        )

    # -- time -------------------------------------------------------------

    def decay_to(self, at: float) -> None:
        assert self.clock is not None
        self.engagement = _decayed(self.engagement, at - self.clock, self.rules.half_life)
        self.clock = at

    def demote_on_decay_until(self, until: float) -> None:
        """If decay takes this mql lead across the exit line by `until`, demote it there."""
        if self.stage is not Stage.MQL or self.clock is None:
            return
        crossing = _crossing(sum(self.engagement.values()), self.clock, self.rules)
        if crossing is None or crossing > until:
            return
        self.decay_to(crossing)
        line = self.rules.stages.mql_exit_line
        instant = _datetime(crossing).isoformat()
        self.move(Stage.LEAD, f"engagement decayed below {line:g}", None, crossing=instant)

    def follow_up_until(self, until: float) -> None:
        """The SLA's breach and escalation, if they come by `until` (an act at the
        breach instant is late: the SLA is met only before it)."""
        sla = self.sla
        if sla is None or self.rules.sales is None:
            return
        due, escalation = self.rules.sla_instants(sla.qualified_at)
        if sla.level == 0 and due <= until:
            self.follow_up("sla_breach", due, due)
            sla = self.sla = replace(sla, level=1)
        if sla.level == 1 and escalation is not None and escalation <= until:
            self.follow_up("sla_escalation", escalation, due)
            self.sla = replace(sla, level=2)

    def acted(self, message: Track, at: float) -> None:
        """A rep acted on the SQL: a `sla_met` in time, a `sla_acted_late` after the
        breach (the time to first action, either way); the SLA ends."""
        sla = self.sla
        assert sla is not None
        if self.rules.sales is not None:
            due, _ = self.rules.sla_instants(sla.qualified_at)
            self.follow_up("sla_met" if sla.level == 0 else "sla_acted_late", at, due, message)
        self.sla = None

    def follow_up(
        self, kind: FollowUpKind, at: float, due: float, message: Track | None = None
    ) -> None:
        sla, rules = self.sla, self.rules
        assert sla is not None and rules.sales is not None and self.clock is not None
        hours = rules.business_hours
        worked = working_seconds_between(sla.qualified_at, at, hours) / 3600.0
        overdue = working_seconds_between(due, at, hours) / 3600.0
        fit = sum(self.fit.values())
        engagement = sum(_decayed(self.engagement, at - self.clock, rules.half_life).values())
        if message is not None:
            late = f", {overdue:.1f} overdue" if kind == "sla_acted_late" else ""
            summary = (f"{message.event} on lead {self.lead_id} after {worked:.1f} "
                       f"working hours (SLA {rules.sales.sla_hours:g}{late}).")  # fmt: skip
        else:
            waited = "escalated: still" if kind == "sla_escalation" else "SLA breached:"
            summary = (f"Lead {self.lead_id} {waited} no rep has acted, "
                       f"{worked:.1f} working hours after it became sales qualified "
                       f"({overdue:.1f} overdue). Fit {fit:.0f}, engagement "
                       f"{engagement:.0f}.")  # fmt: skip
        self.transitions.append(
            FollowUp(
                kind=kind,
                alert_id=follow_up_id(kind, self.lead_id, sla.transition_id),
                lead_id=self.lead_id,
                occurred_at=_datetime(at),
                qualified_at=_datetime(sla.qualified_at),
                due_at=_datetime(due),
                sql_transition_id=sla.transition_id,
                working_hours=round(worked, 3),
                hours_overdue=round(overdue, 3),
                action=message.event if message is not None else None,
                message_id=message.messageId if message is not None else None,
                stage=self.stage,
                fit_score=_round(fit),
                engagement_score=_round(engagement),
                summary=summary,
                rules_version=rules.version,
            )
        )

    # -- applying a message -------------------------------------------------

    def merge_traits(self, message: Identify | Group, at: float) -> None:
        """Last write per trait wins; group traits (and an identify `company`) go under company."""
        traits = dict(self.traits)
        times = dict(self.trait_times)
        if isinstance(message, Identify):
            incoming = dict(message.traits)
            company_update = incoming.pop("company", None)
            traits.update(incoming)
            times.update(dict.fromkeys(incoming, at))
        else:
            company_update = {"id": message.groupId, **message.traits}
        if isinstance(company_update, dict):
            traits["company"] = {**traits.get("company", {}), **company_update}
            times.update(dict.fromkeys((f"company.{name}" for name in company_update), at))
        self.trait_times = times
        known = self.traits
        changed = {name for name, value in traits.items() if known.get(name, _ABSENT) != value}
        if not changed:
            return  # a resend of known traits: the fit stands
        self.traits = traits
        self.evaluate_fit(changed)

    def evaluate_fit(self, changed: set[str] | None = None) -> None:
        """The fit of the traits; with `changed`, only the rules reading those are evaluated."""
        if changed is None or self.fit_fingerprint != self.rules.fingerprint:
            matching = self.rules.fit_rules_matching(self.traits)
        else:
            held = {*self.fit, *self.disqualifiers}
            matching = self.rules.fit_rules_matching(self.traits, changed, held)
        self.fit = {rule.id: rule.points for rule in matching if not rule.disqualify}
        self.disqualifiers = tuple(rule.id for rule in matching if rule.disqualify)
        self.fit_fingerprint = self.rules.fingerprint

    def fire_engagement_rules(self, message: Message, at: float) -> None:
        fired = self.rules.engagement_rules_matching(message)
        if not fired:
            return
        assert self.clock is not None
        half_life = self.rules.half_life
        # A late message's points count decayed from its own time.
        late = self.clock - at
        factor = 0.5 ** (late / half_life) if late and half_life is not None else 1.0
        engagement = dict(self.engagement)
        for rule in fired:
            if rule.limit is not None:
                counted = self._count_within_limit(rule.id, rule.limit.count, rule.limit.window, at)
                if not counted:
                    continue
            engagement[rule.id] = engagement.get(rule.id, 0.0) + rule.points * factor
            if rule.id not in self.engagement_points:  # the rule's first firing for the lead
                self.engagement_points = {**self.engagement_points, rule.id: rule.points}
        self.engagement = engagement

    def reweight(self) -> None:
        """The engagement totals in the current rules' points (see `_reweighted`)."""
        self.engagement, self.engagement_points, self.firings = _reweighted(self, self.rules)

    def combine_firings(self, other: LeadState) -> None:
        """Both leads' counted firings, the limits held over them together: a firing the
        limit would not have counted in one history is taken out, points and all."""
        assert self.clock is not None
        for rule_id, theirs in other.firings.items():
            rule = self.rules.engagement_rule(rule_id)
            horizon = max(
                self.limit_horizons.get(rule_id, -math.inf),
                other.limit_horizons.get(rule_id, -math.inf),
            )
            if horizon > -math.inf:
                self.limit_horizons = {**self.limit_horizons, rule_id: horizon}
            times = sorted((*self.firings.get(rule_id, ()), *theirs))
            if rule is None or rule.limit is None:
                self.firings = {**self.firings, rule_id: tuple(times)}
                continue
            kept: list[float] = []
            for at in times:
                start = at - rule.limit.window
                if bisect_right(kept, at) - bisect_left(kept, start) >= rule.limit.count:
                    dropped = decay(rule.points, self.clock - at, self.rules)
                    self.engagement[rule_id] = self.engagement.get(rule_id, 0.0) - dropped
                else:
                    kept.append(at)
            self.firings = {
                **self.firings,
                rule_id: tuple(kept[-LIMIT_HISTORY * rule.limit.count :]),
            }

    def _count_within_limit(self, rule_id: str, count: int, window: float, at: float) -> bool:
        """Count a firing at `at` unless `count` counted ones lie in [at - window, at].

        The history kept (see `scoring.state`) reaches back to a horizon; a firing
        whose window starts before it is not counted, so a limit is never exceeded.
        """
        assert self.clock is not None
        start = at - window
        reach = self.clock - 2 * window
        horizon = self.limit_horizons.get(rule_id)
        if start < reach or (horizon is not None and start <= horizon):
            return False
        times = self.firings.get(rule_id, ())
        if bisect_right(times, at) - bisect_left(times, start) >= count:
            return False
        kept = list(times[bisect_left(times, reach) :])
        insort(kept, at)
        cap = LIMIT_HISTORY * count
        horizons = {r: h for r, h in self.limit_horizons.items() if h >= reach}
        if len(kept) > cap:
            horizons[rule_id] = kept[-cap - 1]
            kept = kept[-cap:]
        self.limit_horizons = horizons
        self.firings = {**self.firings, rule_id: tuple(kept)}
        return True

    # -- stages -------------------------------------------------------------

    def move(self, to_stage: Stage, reason: str, message_id: str | None, crossing: str = "") -> str:
        """A stage change caused by a message, or (message_id None) by decay at `crossing`,
        or by new rules; the transition's id."""
        trigger = f"message:{message_id}" if message_id is not None else f"decay:{crossing}"
        cause: Literal["message", "decay", "rules"] = "decay" if message_id is None else "message"
        if self.rules_change:
            trigger, cause = f"rules:{self.rules.fingerprint}", "rules"
            reason = f"rules {self.rules.version}: {reason}"
        if self.merging is not None:
            trigger = f"merge:{self.merging}:{trigger}"
            reason = f"merged {self.merging}: {reason}"
        assert self.clock is not None
        engagement = dict(self.engagement)
        explanation = _explain(self, engagement, self.rules)
        contributions = sorted([*explanation["fit"], *explanation["engagement"]], key=_weight)
        handoff = transition_id(self.lead_id, self.stage, to_stage, trigger)
        self.transitions.append(
            Transition(
                transition_id=handoff,
                lead_id=self.lead_id,
                from_stage=self.stage,
                to_stage=to_stage,
                occurred_at=_datetime(self.clock),
                trigger=cause,
                message_id=message_id,
                reason=reason,
                fit_score=_round(sum(self.fit.values())),
                engagement_score=_round(sum(engagement.values())),
                top_rules=contributions[:TOP_RULES],
                criteria=explanation["criteria"],
                rules_version=self.rules.version,
            )
        )
        if self.stage is Stage.SQL:
            self.sla = None  # out of sql: no rep is due any more
        self.stage = to_stage
        return handoff

    def disqualification(
        self,
        previous_disqualifiers: tuple[str, ...],
        sales_event: SalesEvent | None,
        message_id: str | None,
        why: object = None,
    ) -> None:
        rejected = sales_event is SalesEvent.LEAD_REJECTED
        if self.stage is Stage.DISQUALIFIED:
            if rejected:
                self.disqualified_by = "sales"
            elif self.disqualified_by == "rules" and not self.disqualifiers:
                self.move(Stage.LEAD, "disqualifying traits no longer match", message_id)
                self.disqualified_by = None
        elif rejected:
            # A sales decision stands whatever its note; the note is cut to a line's length.
            reason = f"rejected by sales: {_brief(why)}" if why else "rejected by sales"
            self.move(Stage.DISQUALIFIED, reason, message_id)
            self.disqualified_by = "sales"
        elif newly := [r for r in self.disqualifiers if r not in previous_disqualifiers]:
            reason = f"disqualified by rule {', '.join(newly)}"
            self.move(Stage.DISQUALIFIED, reason, message_id)
            self.disqualified_by = "rules"

    def thresholds(self, message_id: str | None) -> None:
        if self.stage is Stage.SQL or self.stage is Stage.DISQUALIFIED:
            return  # only sales (or disqualifying traits) move these
        thresholds = self.rules.stages
        fit = sum(self.fit.values())
        engagement = sum(self.engagement.values())
        qualifies = fit >= thresholds.mql.min_fit and engagement >= thresholds.mql.min_engagement
        if self.stage is Stage.LEAD and qualifies:
            reason = (
                f"fit {fit:g} >= {thresholds.mql.min_fit:g} and engagement "
                f"{engagement:.1f} >= {thresholds.mql.min_engagement:g}"
            )
            self.move(Stage.MQL, reason, message_id)
        if self.stage is not Stage.MQL:
            return
        qualification = self.rules.qualification
        answers = self.criteria.get(qualification.framework, {})
        if sum(1 for met in answers.values() if met) >= qualification.required:
            met = _criteria_state(self.criteria, self.rules)["met"]
            reason = (
                f"{qualification.framework} criteria met: {', '.join(met)} "
                f"({len(met)} of {len(qualification.criteria)}, "
                f"{qualification.required} required)"
            )
            handoff = self.move(Stage.SQL, reason, message_id)
            if self.rules.sales is not None and self.clock is not None:
                self.sla = Sla(self.clock, handoff)  # a rep is due
        elif fit < thresholds.mql.min_fit:
            self.move(Stage.LEAD, f"fit {fit:g} below {thresholds.mql.min_fit:g}", message_id)
        elif engagement < thresholds.mql_exit_line:
            reason = f"engagement {engagement:.1f} below {thresholds.mql_exit_line:g}"
            self.move(Stage.LEAD, reason, message_id)
