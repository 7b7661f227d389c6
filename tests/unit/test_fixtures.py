"""Real payloads, as Segment's and RudderStack's tools deliver them, read and replayed.

The files under tests/fixtures/payloads are copied from public SDK tests, spec docs and
webhook-source tests; tests/fixtures/payloads/MANIFEST.md names each line's source and
what it should become. Every line is read on its own: the ones listed in REJECTED stay
rejected (with the reason that applies), every other message is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoring import load_rules
from scoring.messages import Batch, Message, Rejection, parse_input
from scoring.outputs import LeadMerge, Transition
from scoring.replay import Replay
from scoring.state import Stage

PAYLOADS = Path(__file__).parents[1] / "fixtures" / "payloads"
SOURCES = sorted(PAYLOADS.glob("*.jsonl"))
RULES = load_rules()

NO_TIME = "timestamp is required"
NO_TYPE = "type is required"
# (file, line, batch item or None) -> a part of the reason. Everything else is accepted.
REJECTED = {
    **{("segment_spec_docs", n, None): NO_TIME for n in (1, 3, 5, 7, 9, 11)},  # minimal docs
    ("segment_http_api_batch", 1, None): NO_TIME,
    ("segment_http_api_batch", 2, None): NO_TIME,  # Segment's servers would set it
    # The per-endpoint HTTP API bodies get their type from the URL (MANIFEST, D2).
    **{("segment_http_api_batch", n, None): NO_TYPE for n in (3, 4, 5, 6, 7, 8, 10)},
    ("segment_http_api_batch", 9, 2): "RFC 3339",  # "2015-2-02T00:30:08.276Z" (D5)
    ("segment_http_api_batch", 9, 3): "RFC 3339",
    **{("analytics_js", 5, i): NO_TYPE for i in range(3)},  # the test's stub items
    ("analytics_node", 7, 0): "unknown type 'type'",
    ("analytics_node", 8, 0): "not a JSON object",
    ("analytics_node", 8, 1): "not a JSON object",
    ("rudderstack_sdk", 8, None): "groupId",  # group(traits) with no group (D6)
    ("rudderstack_sdk", 10, 0): "event",  # the XHR-queue test's items have no event name
    ("rudderstack_sdk", 10, 1): "event",
    **{("rudderstack_server", n, 0): NO_TIME for n in (1, 2, 3, 4)},
    **{("rudderstack_webhook", n, 0): NO_TIME for n in (2, 9, 14, 15, 18, 19)},
    ("rudderstack_webhook", 6, 0): "userId or anonymousId is required",
    ("rudderstack_webhook", 11, 0): "originalTimestamp",  # "2019-01-TuT12:48:23.395+00:00"
}


def outcomes() -> dict[tuple[str, int, int | None], Message | Rejection]:
    read: dict[tuple[str, int, int | None], Message | Rejection] = {}
    for source in SOURCES:
        for number, line in enumerate(source.read_bytes().splitlines(), start=1):
            parsed = parse_input(line)
            if isinstance(parsed, Batch):
                for index, item in enumerate(parsed):
                    read[source.stem, number, index] = item
            else:
                read[source.stem, number, None] = parsed
    return read


OUTCOMES = outcomes()


def test_every_source_file_is_read() -> None:
    assert len(SOURCES) == 9
    assert len(OUTCOMES) > 90
    assert set(REJECTED) <= set(OUTCOMES), "a rejection names a line that is not there"


@pytest.mark.parametrize("where", sorted(OUTCOMES, key=str), ids=str)
def test_a_real_delivery_is_accepted_unless_its_meaning_is_unclear(where: tuple) -> None:
    outcome = OUTCOMES[where]
    if where in REJECTED:
        assert isinstance(outcome, Rejection), f"{where} was accepted"
        assert REJECTED[where] in outcome.reason
        if where[2] is not None:
            assert outcome.index == where[2]
    else:
        assert not isinstance(outcome, Rejection), f"{where}: {outcome.reason}"


def at(where: tuple) -> str:
    message = OUTCOMES[where]
    assert not isinstance(message, Rejection)
    return message.timestamp.isoformat()


def test_deliveries_read_as_the_manifest_says() -> None:
    # Segment's delivered identify: `timestamp` as given; a delete with `context: []`.
    assert at(("segment_partner_spec", 1, None)) == "2019-06-21T16:33:26.158000+00:00"
    delete = OUTCOMES["segment_partner_spec", 8, None]
    assert not isinstance(delete, Rejection) and delete.type == "delete"
    assert delete.userId == "5678"
    # The batch envelope's context reaches its items; no messageId: a derived one.
    item = OUTCOMES["segment_http_api_batch", 9, 0]
    assert not isinstance(item, Rejection)
    assert item.context["device"] and item.messageId.startswith("content-")
    # analytics-python's request body: the time is the envelope's sentAt (MANIFEST, D1).
    assert at(("analytics_python", 6, 0)) == "2025-02-24T16:37:02.345678+00:00"
    # RudderStack's numeric userIds read as strings.
    assert OUTCOMES["rudderstack_webhook", 4, 0].lead_id == "1"  # type: ignore[union-attr]


def test_rudderstack_context_traits_give_the_fit_segment_traits_give() -> None:
    rudder = json.loads((PAYLOADS / "rudderstack_sdk.jsonl").read_text().splitlines()[2])
    assert "traits" not in rudder and rudder["context"]["traits"]
    segment = {**rudder, "traits": rudder["context"]["traits"]}
    segment["context"] = {k: v for k, v in rudder["context"].items() if k != "traits"}
    fits = []
    for message in (rudder, segment):
        replay = Replay(RULES)
        list(replay.feed([json.dumps(message)]))
        (state,) = replay.states.values()
        fits.append((state.traits, state.fit))
    assert fits[0] == fits[1]


def journey(name: str, *, stitch: bool = True) -> tuple[Replay, list]:
    replay = Replay(RULES, stitch=stitch)
    path = PAYLOADS / "journeys" / f"{name}.jsonl"
    outputs = list(replay.feed(path.read_text().splitlines()))
    return replay, outputs


POPUP = "29be5d21-2981-4b38-94c2-771116e58928"


def test_the_popup_signup_journey_makes_the_known_lead_an_mql() -> None:
    replay, outputs = journey("popup_signup")
    assert list(replay.states) == ["usr_01JB7ZK3Q8"]
    (merge,) = [o for o in outputs if isinstance(o, LeadMerge)]
    assert (merge.merged_id, merge.survivor_id) == (POPUP, "usr_01JB7ZK3Q8")
    assert merge.via == "anonymousId"
    (mql,) = [o for o in outputs if isinstance(o, Transition)]
    assert (mql.lead_id, mql.to_stage) == ("usr_01JB7ZK3Q8", Stage.MQL)
    assert mql.reason.startswith(f"merged {POPUP}")
    assert outputs.index(merge) < outputs.index(mql)
    # Without stitching the history stays on the cookie: nobody qualifies.
    unstitched, outputs = journey("popup_signup", stitch=False)
    assert set(unstitched.states) == {POPUP, "usr_01JB7ZK3Q8"}
    assert not any(isinstance(o, Transition) for o in outputs)


def test_an_email_only_popup_and_a_later_login_on_another_device_are_one_lead() -> None:
    replay, outputs = journey("popup_email_only")
    assert list(replay.states) == ["usr_01JBQ4M2XW"]
    merges = [(o.merged_id, o.via) for o in outputs if isinstance(o, LeadMerge)]
    assert merges == [
        ("0a275bec-ccb9-4244-9b91-2ac52a7c31ca", "anonymousId"),
        ("5d55b696-65f0-40a7-8d02-39753a0a94c0", "email"),  # matched after lower-casing
    ]
    stages = [(t.lead_id, t.to_stage) for t in outputs if isinstance(t, Transition)]
    assert stages == [("usr_01JBQ4M2XW", Stage.MQL)]  # no qualified cookie-id lead


def test_the_partner_spec_file_replayed_whole_refuses_to_merge_two_user_ids() -> None:
    replay = Replay(RULES)
    list(replay.feed((PAYLOADS / "segment_partner_spec.jsonl").read_text().splitlines()))
    # Line 6 aliases one userId to another: a conflict, no merge; line 7 deletes the alias.
    assert replay.merges == 0
    assert replay.identities.conflicts["two_user_ids"] >= 1
    assert "97980cfea0067" in replay.states and "507f191e81" not in replay.states
    assert replay.deletions == 3
