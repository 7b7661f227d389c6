"""The synthetic traffic generator: exact, deterministic, ordered, and shaped like SDK output."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scoring import Rejection, parse_message
from streams.dev import traffic
from streams.dev.traffic import DEFAULT_START, generate, live

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"track", "page", "identify", "group", "screen", "alias"}
EVENTS = {
    "Email Opened",
    "Email Link Clicked",
    "Unsubscribed",
    "Email Bounced",
    "Email Marked as Spam",
    "Signed Up",
    "Signed In",
    "Account Created",
    "Trial Started",
    "Form Submitted",
    "Demo Requested",
    "Qualification Updated",
    "Lead Accepted",
    "Lead Rejected",
    "Lead Recycled",
}
SERVER_EVENTS = {e for e in EVENTS if e.startswith(("Email", "Lead", "Qualification"))}
SERVER_EVENTS.add("Unsubscribed")
AJS_ID = re.compile(r"ajs-next-[0-9a-f]{32}")
RUDDERSTACK = "RudderLabs JavaScript SDK"


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def event_time(message: dict) -> datetime:
    """`timestamp`, or Segment's rule for a message without it."""
    if "timestamp" in message:
        return at(message["timestamp"])
    sent, original = at(message["sentAt"]), at(message["originalTimestamp"])
    return at(message["receivedAt"]) - (sent - original)


def library(message: dict) -> str:
    return message["context"]["library"]["name"]


def is_uuid4(text: str) -> bool:
    return uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return list(generate(3_000, 150, seed=11))


@pytest.fixture(scope="module")
def large() -> list[dict]:
    return list(generate(20_000, 500, seed=5))


def test_same_seed_same_messages() -> None:
    assert list(generate(500, 30, seed=3)) == list(generate(500, 30, seed=3))
    assert list(generate(500, 30, seed=3)) != list(generate(500, 30, seed=4))


@pytest.mark.parametrize(("messages", "leads"), [(0, 5), (1, 1), (7, 10), (40, 20), (1_001, 13)])
def test_exact_count(messages: int, leads: int) -> None:
    assert sum(1 for _ in generate(messages, leads, seed=1)) == messages


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        next(generate(10, 0))


def test_event_times_never_decrease_and_stay_in_the_span(sample: list[dict]) -> None:
    times = [event_time(message) for message in sample]
    assert all(time.utcoffset() is not None for time in times)
    assert times == sorted(times)
    assert DEFAULT_START <= times[0] <= times[-1] <= DEFAULT_START + timedelta(days=60)


def test_start_moves_the_traffic() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    first = next(generate(10, 2, start=start, span_days=1))
    assert start <= event_time(first) <= start + timedelta(days=1)
    odd = datetime(2027, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)  # not a whole millisecond
    times = [event_time(m) for m in generate(200, 5, start=odd, span_days=0.01)]
    assert odd <= times[0] and times[-1] <= odd + timedelta(days=0.01)


def test_required_fields_and_known_types(sample: list[dict]) -> None:
    for message in sample:
        assert message["type"] in TYPES
        assert isinstance(message["messageId"], str) and message["messageId"]
        assert message.get("userId") or message.get("anonymousId")
        if message["type"] == "track":
            assert message["event"] in EVENTS
        if message["type"] == "page":
            page = message["properties"]
            assert page["path"].startswith("/")
            assert page["url"] == traffic.SITE + page["path"] + page["search"]
            assert message["context"]["page"] == page


def test_the_three_sdk_timestamps_give_the_event_time(large: list[dict]) -> None:
    for message in large:
        original, sent = at(message["originalTimestamp"]), at(message["sentAt"])
        received = at(message["receivedAt"])
        assert original < sent < received <= original + timedelta(seconds=2)
        assert received - (sent - original) == event_time(message)
        if "timestamp" in message:
            assert message["timestamp"].endswith("Z")
            assert at(message["timestamp"]) - original < timedelta(seconds=1)


def test_browsers_send_web_calls_and_servers_the_email_and_crm_events(large: list[dict]) -> None:
    libraries: Counter[str] = Counter()
    for message in large:
        library, context = message["context"]["library"], message["context"]
        libraries[library["name"]] += 1
        assert library["version"]
        server = message.get("event") in SERVER_EVENTS
        assert (library["name"] == "analytics-python") is server, message
        if server:
            assert "anonymousId" not in message and message["userId"]
            assert is_uuid4(message["messageId"]) and message["integrations"] == {}
            assert set(context) == {"library"}
            continue
        assert is_uuid4(message["anonymousId"])
        assert set(context["page"]) == {"path", "referrer", "search", "title", "url"}
        assert context["userAgent"].startswith("Mozilla/5.0") and context["locale"]
        if library["name"] == "analytics.js":
            assert AJS_ID.fullmatch(message["messageId"]) and message["integrations"] == {}
        else:
            assert library["name"] == RUDDERSTACK
            assert is_uuid4(message["messageId"]) and message["integrations"] == {"All": True}
            assert message["channel"] == "web"
    assert set(libraries) == {"analytics.js", "analytics-python", RUDDERSTACK}
    assert libraries["analytics.js"] > 5 * libraries[RUDDERSTACK]


def test_rudderstack_identifies_carry_traits_only_in_context(large: list[dict]) -> None:
    identifies = [m for m in large if m["type"] == "identify" and library(m) == RUDDERSTACK]
    assert identifies
    for message in identifies:
        assert "traits" not in message
        assert message["context"]["traits"]["email"] and message["context"]["traits"]["title"]
    untimed = [m for m in large if "timestamp" not in m]
    assert all(m in identifies for m in untimed)
    assert bool(untimed) is (traffic.UNTIMED_SHARE > 0)
    assert len(untimed) < 0.01 * len(large)


def test_the_untimed_share_changes_only_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic, "UNTIMED_SHARE", 0.0)
    timed = list(generate(5_000, 200, seed=9))
    monkeypatch.setattr(traffic, "UNTIMED_SHARE", 1.0)
    untimed = list(generate(5_000, 200, seed=9))
    assert all("timestamp" in m for m in timed)
    dropped = [m for m in untimed if "timestamp" not in m]
    rudder = [m for m in timed if m["type"] == "identify" and "traits" not in m]
    assert dropped and len(dropped) == len(rudder)
    assert [{k: v for k, v in m.items() if k != "timestamp"} for m in timed] == [
        {k: v for k, v in m.items() if k != "timestamp"} for m in untimed
    ]


def test_every_message_is_accepted_at_its_event_time(large: list[dict]) -> None:
    for message in large:
        parsed = parse_message(json.dumps(message))
        assert not isinstance(parsed, Rejection), (parsed, message)
        assert parsed.at == event_time(message).timestamp()


def test_every_lead_starts_with_identify_then_group(sample: list[dict]) -> None:
    firsts: dict[str, list[str]] = {}
    for message in sample:
        if "userId" in message:
            firsts.setdefault(message["userId"], []).append(message["type"])
    assert len(firsts) == 150
    assert all(types[:2] == ["identify", "group"] for types in firsts.values())


def test_group_calls_carry_segments_reserved_company_traits(sample: list[dict]) -> None:
    groups = [m for m in sample if m["type"] == "group"]
    assert groups
    for message in groups:
        traits = message["traits"]
        assert {"name", "employees", "industry"} <= set(traits) and "employee_count" not in traits
        assert isinstance(traits["employees"], int)


def test_a_visitor_browses_anonymous_signs_up_then_identifies(large: list[dict]) -> None:
    by_visitor: dict[str, list[dict]] = defaultdict(list)
    for message in large:
        if "anonymousId" in message:
            by_visitor[message["anonymousId"]].append(message)
    owners = {
        visitor: {m["userId"] for m in messages if "userId" in m}
        for visitor, messages in by_visitor.items()
    }
    assert all(len(users) <= 1 for users in owners.values())  # no id is claimed twice
    stitched = 0
    high_intent = 0
    for messages in by_visitor.values():
        signups = [
            i for i, m in enumerate(messages) if m.get("event") == "Signed Up" and "userId" not in m
        ]
        if not signups:
            continue
        stitched += 1
        signup = signups[0]
        before, identify = messages[:signup], messages[signup + 1]
        assert before and all(m["type"] == "page" and "userId" not in m for m in before)
        high_intent += any(m["properties"]["path"] in ("/pricing", "/demo") for m in before)
        assert identify["type"] == "identify" and identify["userId"]
        traits = identify.get("traits") or identify["context"]["traits"]
        assert traits["email"] and traits["title"]
        assert event_time(identify) - event_time(messages[signup]) < timedelta(seconds=2)
        assert all(m.get("userId") == identify["userId"] for m in messages[signup + 1 :])
    leads = {m["userId"] for m in large if "userId" in m}
    assert 0.15 * len(leads) < stitched < 0.45 * len(leads)  # about STITCHED_SHARE
    assert high_intent > stitched / 3


def test_buyers_and_tire_kickers(sample: list[dict]) -> None:
    events = Counter(message.get("event") for message in sample)
    buyers = {m["userId"] for m in sample if m.get("event") == "Demo Requested"}
    assert 5 <= len(buyers) <= 40  # about 10% of 150 leads
    assert events["Qualification Updated"] and events["Lead Accepted"]
    assert events["Email Opened"] > events["Demo Requested"]
    assert events["Signed Up"] and events["Signed In"] and events["Trial Started"]
    criteria = [m["properties"] for m in sample if m.get("event") == "Qualification Updated"]
    assert all(c["framework"] == "BANT" and c["criteria"] for c in criteria)
    visitors = {m["anonymousId"] for m in sample if "anonymousId" in m}
    known = {m["anonymousId"] for m in sample if "anonymousId" in m and "userId" in m}
    assert visitors - known  # some visitors never identify


def test_some_exact_duplicates(large: list[dict]) -> None:
    ids = Counter(message["messageId"] for message in large)
    resent = [message_id for message_id, count in ids.items() if count > 1]
    assert 0 < len(resent) < 0.03 * len(large)
    copies = [m for m in large if m["messageId"] == resent[0]]
    assert all(copy == copies[0] for copy in copies)


def test_messages_are_json(sample: list[dict]) -> None:
    for message in sample:
        assert json.loads(json.dumps(message)) == message


def test_live_is_stamped_now_and_has_buyers_and_popup_signups() -> None:
    before = datetime.now(UTC)
    messages = list(itertools.islice(live(seed=2), 400))
    assert all(event_time(m) >= before for m in messages)
    assert any(m.get("event") == "Demo Requested" for m in messages[:150])
    assert any(m.get("event") == "Lead Accepted" for m in messages[:300])
    signups = [m for m in messages if m.get("event") == "Signed Up" and "userId" not in m]
    identified = {m["anonymousId"] for m in messages if m["type"] == "identify"}
    assert signups and any(m["anonymousId"] in identified for m in signups)


def test_cli_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    command = [
        sys.executable,
        "-m",
        "streams.dev.traffic",
        "--messages",
        "120",
        "--leads",
        "8",
        "--seed",
        "7",
        "--out",
        str(out),
    ]
    subprocess.run(command, cwd=ROOT, check=True)
    lines = out.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == list(generate(120, 8, seed=7))


def test_example_file_is_the_cli_output_plus_three_bad_lines() -> None:
    """Regenerate with `python -m streams.dev.traffic --messages 300 --leads 20 --seed 36`."""
    lines = (ROOT / "examples" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines[:300]] == list(generate(300, 20, seed=36))
    assert len(lines) == 303
    assert all(isinstance(parse_message(line), Rejection) for line in lines[300:])
