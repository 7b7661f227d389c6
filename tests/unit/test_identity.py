"""Identities: one person, one lead (DESIGN.md), in the core and in replay.

The rules are the small explicit ones of tests/unit/semantics.py (demo 40, pricing page 20,
email-open 5 at most 2 a week; fit: company.employee_count >= 50 -> 20, a VP title 20;
mql at fit 30 and engagement 40).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import Stage, Transition, encode_state, snapshot
from scoring.engine import apply_message, merge
from scoring.identity import joined, joins_allowed, unjoined, with_links
from scoring.messages import parse_message
from scoring.outputs import LeadDeletion, LeadMerge
from scoring.replay import BadLine, Replay
from scoring.state import MAX_ANONYMOUS_JOINS, MAX_LINKS, MAX_MERGES, position_of
from tests.unit.semantics import DAY, RULES, epoch, iso, make_rules

NO_LIMITS = make_rules(half_life=True)


def message(kind: str, days: float, mid: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "messageId": mid, "timestamp": iso(days)}
    return body | fields


def page(days: float, mid: str, path: str = "/pricing", **ids: Any) -> dict[str, Any]:
    return message("page", days, mid, properties={"path": path}, **ids)


def track(days: float, mid: str, event: str, **ids: Any) -> dict[str, Any]:
    return message("track", days, mid, event=event, **ids)


def identify(days: float, mid: str, traits: dict[str, Any], **ids: Any) -> dict[str, Any]:
    return message("identify", days, mid, traits=traits, **ids)


VP = {"title": "VP Marketing", "company": {"employee_count": 120}}


def replay(*bodies: dict[str, Any], rules: Any = RULES) -> tuple[Replay, list[Any]]:
    run = Replay(rules)
    out = list(run.feed(json.dumps(body) for body in bodies))
    assert not [o for o in out if isinstance(o, BadLine)], out
    return run, out


def stages(run: Replay) -> dict[str, Stage]:
    return {lead_id: state.stage for lead_id, state in run.states.items()}


def merges(out: list[Any]) -> list[tuple[str, str, str]]:
    return [(m.merged_id, m.survivor_id, m.via) for m in out if isinstance(m, LeadMerge)]


# --- The popup signup journey ------------------------------------------------------

ANON = "5f0e8a52-0c1f-4b1e-9d6e-3a7b1c2d4e5f"
JOURNEY = [
    page(0.0, "p1", anonymousId=ANON),
    page(0.1, "p2", anonymousId=ANON),
    page(0.2, "p3", path="/demo", anonymousId=ANON),
    track(0.3, "d1", "Demo Requested", anonymousId=ANON),
]


def test_the_anonymous_history_is_credited_to_the_known_lead() -> None:
    run, out = replay(*JOURNEY, identify(0.4, "i1", VP, userId="ada", anonymousId=ANON))
    assert stages(run) == {"ada": Stage.MQL}  # no cookie-id lead is left
    assert merges(out) == [(ANON, "ada", "anonymousId")]
    assert snapshot(run.states["ada"], RULES).engagement_score > 40
    mql = [t for t in out if isinstance(t, Transition)]
    assert [(t.lead_id, t.to_stage) for t in mql] == [("ada", Stage.MQL)]
    assert ANON in mql[0].reason and mql[0].message_id == "i1"
    assert run.states["ada"].identity is not None
    assert run.states["ada"].identity.absorbed == (ANON,)


def test_the_merge_comes_after_the_message_in_the_output() -> None:
    _, out = replay(*JOURNEY, identify(0.4, "i1", VP, userId="ada", anonymousId=ANON))
    assert [type(o).__name__ for o in out] == ["LeadMerge", "Transition"]


def test_later_messages_of_the_anonymous_id_reach_the_survivor() -> None:
    run, _ = replay(
        *JOURNEY,
        identify(0.4, "i1", {}, userId="ada", anonymousId=ANON),
        page(0.5, "p4", path="/blog", anonymousId=ANON),
    )
    assert set(run.states) == {"ada"}
    assert run.states["ada"].clock is not None
    assert math.isclose(run.states["ada"].clock, run.states["ada"].clock)


def test_an_email_only_popup_then_a_login_is_one_lead() -> None:
    email = {"email": "Ada@Acme.example ", **VP}
    run, out = replay(
        *JOURNEY,
        identify(0.4, "i1", email, anonymousId=ANON),  # the popup: no user id yet
        identify(2.0, "i2", {"email": "ada@acme.example"}, userId="ada"),  # the login
    )
    assert stages(run) == {"ada": Stage.MQL}
    assert merges(out) == [(ANON, "ada", "email")]
    transitions = [(t.lead_id, t.from_stage, t.to_stage) for t in out if isinstance(t, Transition)]
    assert transitions == [(ANON, Stage.LEAD, Stage.MQL), ("ada", Stage.LEAD, Stage.MQL)]


def test_alias_links_the_previous_id() -> None:
    run, out = replay(*JOURNEY, message("alias", 0.5, "a1", previousId=ANON, userId="ada"))
    assert set(run.states) == {"ada"} and merges(out) == [(ANON, "ada", "alias")]


def test_of_two_anonymous_leads_the_older_survives() -> None:
    run, out = replay(
        page(1.0, "p1", anonymousId="b-visitor"),
        page(0.0, "p2", anonymousId="a-visitor"),  # arrives later, happened earlier
        identify(1.5, "i1", {"email": "x@acme.example"}, anonymousId="b-visitor"),
        identify(1.6, "i2", {"email": "x@acme.example"}, anonymousId="a-visitor"),
    )
    assert set(run.states) == {"a-visitor"}
    assert merges(out) == [("b-visitor", "a-visitor", "email")]


# --- Safety ------------------------------------------------------------------------


def test_two_user_ids_never_merge() -> None:
    run, out = replay(
        track(0.0, "d1", "Demo Requested", userId="ada"),
        track(0.0, "d2", "Demo Requested", userId="grace"),
        message("alias", 0.1, "a1", previousId="grace", userId="ada"),
    )
    assert set(run.states) == {"ada", "grace"} and merges(out) == []
    assert run.identities.conflicts == {"two_user_ids": 1}


def test_the_first_claim_of_an_anonymous_id_wins() -> None:
    run, out = replay(
        *JOURNEY,
        identify(0.4, "i1", {}, userId="ada", anonymousId=ANON),
        identify(0.5, "i2", VP, userId="grace", anonymousId=ANON),  # a shared computer
        track(0.6, "d2", "Demo Requested", anonymousId=ANON),
    )
    assert merges(out) == [(ANON, "ada", "anonymousId")]
    assert run.identities.conflicts == {"claimed": 1}
    assert snapshot(run.states["grace"], RULES).fit_score == 40  # scored, unmerged
    assert snapshot(run.states["ada"], RULES).engagement_score > 80  # both demos


def test_the_first_claim_of_an_email_wins() -> None:
    run, out = replay(
        identify(0.0, "i1", {"email": "a@acme.example"}, userId="ada"),
        identify(0.1, "i2", {"email": "a@acme.example"}, userId="grace"),
    )
    assert merges(out) == [] and run.identities.conflicts == {"claimed": 1}
    assert set(run.states) == {"ada", "grace"}


def test_an_email_claimed_by_a_user_absorbs_a_later_anonymous_lead() -> None:
    run, out = replay(
        identify(0.0, "i1", {"email": "a@acme.example"}, userId="ada"),
        *JOURNEY,
        identify(0.5, "i2", {"email": "a@acme.example"}, anonymousId=ANON),
    )
    assert set(run.states) == {"ada"} and merges(out) == [(ANON, "ada", "email")]


def test_at_most_five_anonymous_ids_join_a_lead_in_30_days() -> None:
    bodies = [
        page(0.1 * i, f"p{i}", userId="ada", anonymousId=f"device-{i}")
        for i in range(MAX_ANONYMOUS_JOINS + 1)
    ]
    bodies.append(page(31.0, "late", userId="ada", anonymousId="device-late"))
    run, _ = replay(*bodies)
    assert run.identities.conflicts == {"anonymous_cap": 1}
    assert run.identities.owner("anon:device-late", run.states) == "ada"
    assert run.identities.owner(f"anon:device-{MAX_ANONYMOUS_JOINS}", run.states) is None


def test_a_join_taken_back_frees_its_place_under_the_cap() -> None:
    user, _ = apply_message(None, parse(page(0.1, "u1", userId="ada")), RULES)
    at = [epoch(0.1 + 0.01 * i) for i in range(MAX_ANONYMOUS_JOINS)]
    full = user
    for moment in at:
        full = joined(full, moment)
    assert not joins_allowed(full, epoch(0.2))
    freed = unjoined(full, at[2])
    assert freed.identity is not None
    assert freed.identity.joins == (*at[:2], *at[3:])
    assert joins_allowed(freed, epoch(0.2))
    assert unjoined(freed, at[2]) is freed  # taken back already: the same lead
    assert unjoined(user, at[0]) is user


def test_at_most_100_merges_into_one_lead() -> None:
    bodies = []
    for i in range(MAX_MERGES + 1):
        day = i * 7.0  # a week apart: the anonymous-id cap does not bind
        bodies.append(page(day, f"p{i}", anonymousId=f"v{i}"))
        bodies.append(page(day + 0.01, f"q{i}", userId="ada", anonymousId=f"v{i}"))
    run, out = replay(*bodies)
    assert len(merges(out)) == MAX_MERGES
    assert run.identities.conflicts == {"merge_cap": 1}
    assert f"v{MAX_MERGES}" in run.states  # scored on its own


# --- The merged state ----------------------------------------------------------------


def test_a_sales_decision_on_the_absorbed_side_sticks() -> None:
    accepted = track(0.5, "acc", "Lead Accepted", anonymousId=ANON)
    run, _ = replay(*JOURNEY, accepted, identify(0.6, "i1", {}, userId="ada", anonymousId=ANON))
    assert stages(run) == {"ada": Stage.SQL}
    rejected = track(0.5, "rej", "Lead Rejected", anonymousId=ANON)
    run, _ = replay(*JOURNEY, rejected, identify(0.6, "i1", VP, userId="ada", anonymousId=ANON))
    assert stages(run) == {"ada": Stage.DISQUALIFIED}
    assert run.states["ada"].disqualified_by == "sales"


def test_traits_take_the_newer_value_by_event_time() -> None:
    run, _ = replay(
        identify(5.0, "i1", {"title": "VP Sales"}, anonymousId=ANON),
        identify(1.0, "i2", {"title": "Intern", "country": "PT"}, userId="ada"),
        page(6.0, "p1", userId="ada", anonymousId=ANON),
    )
    assert run.states["ada"].traits == {"title": "VP Sales", "country": "PT"}


def test_limits_hold_over_the_combined_firings() -> None:
    opens = [track(0.1 * i, f"o{i}", "Email Opened", anonymousId=ANON) for i in range(2)]
    more = [track(0.5 + 0.1 * i, f"u{i}", "Email Opened", userId="ada") for i in range(2)]
    run, _ = replay(*opens, *more, page(1.0, "p1", path="/blog", userId="ada", anonymousId=ANON))
    one, _ = replay(*[{**m, "userId": "ada"} for m in (*opens, *more)])
    day_one = epoch(1.0)
    combined = snapshot(run.states["ada"], RULES, day_one).engagement_score
    assert math.isclose(combined, snapshot(one.states["ada"], RULES, day_one).engagement_score)
    unlimited = snapshot(replay(*opens, *more, rules=NO_LIMITS)[0].states["ada"], NO_LIMITS)
    assert combined < 4 * 5 * 0.99 and unlimited.engagement_score > 0  # two opens dropped


def test_a_repeated_hand_over_changes_nothing() -> None:
    run, _ = replay(*JOURNEY)
    anonymous = run.states[ANON]
    user, _ = apply_message(None, parse(identify(0.4, "i1", VP, userId="ada")), RULES)
    once, _ = merge(user, anonymous, RULES, "i1")
    twice, transitions = merge(once, anonymous, RULES, "i1")
    assert twice == once and transitions == []


def test_rules_with_the_same_points_are_explained_in_the_same_order_whoever_absorbs() -> None:
    rules = make_rules(
        extra_engagement="""    - id: a-webinar
      event: Webinar
      points: 5
"""
    )  # as many points as email-open
    cookie, _ = apply_message(None, parse(track(1, "c1", "Email Opened", anonymousId=ANON)), rules)
    user, _ = apply_message(None, parse(track(1, "u1", "Webinar", userId="ada")), rules)
    one, _ = merge(user, cookie, rules, "link")
    other, _ = merge(cookie, user, rules, "link")
    explained = [c.rule_id for c in snapshot(one, rules).explanation.engagement]
    assert explained == [c.rule_id for c in snapshot(other, rules).explanation.engagement]
    assert explained == ["a-webinar", "email-open"]


def test_the_absorbed_leads_positions_are_kept_apart_from_the_survivors() -> None:
    # One source (a stream partition), two leads: the user's message at 110 and the
    # cookie's at 120 went to two partitions; after a crash the cookie's can be merged
    # first. The user's message must still be applied, a re-read of the cookie's not.
    source = "lead-events:1"
    user, _ = apply_message(None, parse(page(0.1, "u1", userId="ada")), RULES, (source, 100))
    cookie, _ = apply_message(None, parse(page(0.2, "c1", anonymousId=ANON)), RULES, (source, 120))
    merged, _ = merge(user, cookie, RULES, "link")
    assert merged.applied == {source: 100, f"{ANON}|{source}": 120}
    late = parse(track(0.3, "u2", "Demo Requested", userId="ada"))
    applied, _ = apply_message(merged, late, RULES, position_of((source, 110), "ada", "ada"))
    assert applied.engagement != merged.engagement and applied.applied[source] == 110
    again = parse(page(0.2, "c1-resent-id", anonymousId=ANON))  # read again, forwarded
    reread, _ = apply_message(merged, again, RULES, position_of((source, 120), ANON, "ada"))
    assert reread == merged
    assert position_of((source, 121), ANON, "ada") == (f"{ANON}|{source}", 121)


def test_the_positions_of_an_absorbed_lead_whose_id_has_a_bar_are_kept() -> None:
    # Auth0's user ids look like `auth0|5f3c...`: the absorbed lead's positions must still
    # be told apart, and a re-read of its message found applied.
    source, absorbed_id = "lead-events:1", "auth0|5f3c11"
    user, _ = apply_message(None, parse(page(0.1, "u1", userId="ada")), RULES, (source, 100))
    other, _ = apply_message(None, parse(page(0.2, "c1", userId=absorbed_id)), RULES, (source, 120))
    merged, _ = merge(user, other, RULES, "link")
    assert merged.applied == {source: 100, f"{absorbed_id}|{source}": 120}
    again = parse(page(0.2, "c1-resent-id", userId=absorbed_id))
    position = position_of((source, 120), absorbed_id, "ada")
    assert apply_message(merged, again, RULES, position)[0] == merged
    twice, _ = merge(replace(user, lead_id="bo"), merged, RULES, "link")  # absorbed again
    assert twice.applied[f"{absorbed_id}|{source}"] == 120


def test_a_lead_keeps_its_latest_links_and_a_merge_joins_them() -> None:
    user, _ = apply_message(None, parse(page(0.1, "u1", userId="ada")), RULES)
    linked = with_links(user, [f"anon:v{i}" for i in range(MAX_LINKS + 5)])
    assert linked.identity is not None
    assert linked.identity.links == tuple(f"anon:v{i}" for i in range(5, MAX_LINKS + 5))
    assert with_links(linked, ["anon:v7"]) is linked  # had it: the same lead
    cookie, _ = apply_message(None, parse(page(0.2, "c1", anonymousId=ANON)), RULES)
    cookie = with_links(cookie, ["email:ada@example.com"])
    merged, _ = merge(with_links(user, ["anon:" + ANON]), cookie, RULES, "link")
    assert merged.identity is not None
    assert merged.identity.links == ("email:ada@example.com", "anon:" + ANON)


def test_state_stays_bounded_as_a_lead_absorbs_many_anonymous_ids() -> None:
    sizes = []
    bodies = []
    for i in range(300):
        day = i * 7.0
        bodies.append(track(day, f"d{i}", "Demo Requested", anonymousId=f"v{i}"))
        bodies.append(page(day + 0.01, f"q{i}", userId="ada", anonymousId=f"v{i}"))
    run = Replay(RULES)
    for i in range(0, len(bodies), 40):
        list(run.feed(json.dumps(b) for b in bodies[i : i + 40]))
        sizes.append(len(encode_state(run.states["ada"])))
    assert max(sizes) < 12_000, sizes
    assert sizes[-1] <= sizes[len(sizes) // 2] + 200, sizes  # flat once the caps bind


# --- Delete --------------------------------------------------------------------------


def test_delete_forgets_the_lead_and_its_links() -> None:
    run, out = replay(
        *JOURNEY,
        identify(0.4, "i1", VP, userId="ada", anonymousId=ANON),
        message("delete", 1.0, "del1", userId="ada"),
        page(1.1, "p9", anonymousId=ANON),
    )
    deletions = [o for o in out if isinstance(o, LeadDeletion)]
    assert [(d.lead_id, d.absorbed_ids) for d in deletions] == [("ada", [ANON])]
    assert set(run.states) == {ANON}  # a new lead: the history is gone
    assert snapshot(run.states[ANON], RULES).engagement_score == 20
    assert run.identities.owners == {}


# --- Properties ------------------------------------------------------------------------


def parse(body: dict[str, Any]) -> Any:
    parsed = parse_message(json.dumps(body))
    assert not isinstance(parsed, BadLine)
    return parsed


EVENTS = st.sampled_from(["Demo Requested", "Unsubscribed", "Webinar"])
TRAITS = st.fixed_dictionaries(
    {}, optional={"title": st.sampled_from(["VP Ops", "Intern"]), "country": st.just("PT")}
)
steps = st.lists(
    st.tuples(st.floats(0, 40), st.booleans(), EVENTS | TRAITS), min_size=1, max_size=12
)


def lead_messages(side: str, drawn: list[tuple[float, bool, Any]]) -> list[dict[str, Any]]:
    ids = {"anonymousId": "visitor"} if side == "a" else {"userId": "ada"}
    out = []
    for i, (days, _, what) in enumerate(sorted(drawn, key=lambda d: d[0])):
        mid = f"{side}{i}"
        if isinstance(what, str):
            out.append(track(days + (0.001 if side == "b" else 0), mid, what, **ids))
        else:
            out.append(identify(days + (0.001 if side == "b" else 0), mid, what, **ids))
    return out


def fold(bodies: list[dict[str, Any]]) -> Any:
    state = None
    for body in bodies:
        state, _ = apply_message(state, parse(body), NO_LIMITS)
    return state


@settings(max_examples=150, deadline=None)
@given(steps, steps)
def test_a_merge_equals_one_lead_receiving_both_histories(a: list[Any], b: list[Any]) -> None:
    anonymous, user = lead_messages("a", a), lead_messages("b", b)
    merged, _ = merge(fold(user), fold(anonymous), NO_LIMITS, "link")
    together = sorted(anonymous + user, key=lambda m: m["timestamp"])
    one = fold([{**m, "userId": "ada"} for m in together])
    assert merged.traits == one.traits
    assert merged.clock == one.clock and merged.first_at == one.first_at
    assert snapshot(merged, NO_LIMITS).fit_score == snapshot(one, NO_LIMITS).fit_score
    assert math.isclose(sum(merged.engagement.values()), sum(one.engagement.values()), abs_tol=1e-9)


@settings(max_examples=150, deadline=None)
@given(steps, steps)
def test_merging_in_either_order_gives_the_same_lead(a: list[Any], b: list[Any]) -> None:
    first, second = fold(lead_messages("a", a)), fold(lead_messages("b", b))
    one, _ = merge(first, second, NO_LIMITS, "link")
    other, _ = merge(second, first, NO_LIMITS, "link")
    assert one.traits == other.traits and one.criteria == other.criteria
    assert one.clock == other.clock and one.fit == other.fit
    assert math.isclose(sum(one.engagement.values()), sum(other.engagement.values()), abs_tol=1e-9)
    # The explanation too: rules with the same points in the same order (by rule id).
    assert snapshot(one, NO_LIMITS).explanation == snapshot(other, NO_LIMITS).explanation


def test_days_are_days() -> None:
    assert DAY == 86_400.0
