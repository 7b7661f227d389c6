"""The synthetic traffic generator: exact, deterministic, ordered, and in the Segment shape."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.traffic import DEFAULT_START, generate, live

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"track", "page", "identify", "group", "screen", "alias"}
EVENTS = {
    "Email Opened",
    "Email Link Clicked",
    "Unsubscribed",
    "Email Bounced",
    "Popup Signup",
    "Newsletter Signup",
    "Form Submitted",
    "Demo Requested",
    "Webinar Registered",
    "Webinar Attended",
    "Trial Started",
    "Qualification Updated",
    "Lead Accepted",
    "Lead Rejected",
    "Lead Recycled",
}


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return list(generate(3_000, 150, seed=11))


def test_same_seed_same_messages() -> None:
    assert list(generate(500, 30, seed=3)) == list(generate(500, 30, seed=3))
    assert list(generate(500, 30, seed=3)) != list(generate(500, 30, seed=4))


@pytest.mark.parametrize(("messages", "leads"), [(0, 5), (1, 1), (7, 10), (40, 20), (1_001, 13)])
def test_exact_count(messages: int, leads: int) -> None:
    assert sum(1 for _ in generate(messages, leads, seed=1)) == messages


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        next(generate(10, 0))


def test_timestamps_never_decrease_and_stay_in_the_span(sample: list[dict]) -> None:
    times = [datetime.fromisoformat(message["timestamp"]) for message in sample]
    assert all(time.utcoffset() is not None for time in times)
    assert times == sorted(times)
    assert DEFAULT_START <= times[0] <= times[-1] <= DEFAULT_START + timedelta(days=60)


def test_start_moves_the_traffic() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    first = next(generate(10, 2, start=start, span_days=1))
    assert start <= datetime.fromisoformat(first["timestamp"]) <= start + timedelta(days=1)


def test_required_fields_and_known_types(sample: list[dict]) -> None:
    for message in sample:
        assert message["type"] in TYPES
        assert isinstance(message["messageId"], str) and message["messageId"]
        assert message.get("userId") or message.get("anonymousId")
        if message["type"] == "track":
            assert message["event"] in EVENTS
        if message["type"] == "page":
            assert message["properties"]["path"].startswith("/")
            assert message["properties"]["url"].endswith(message["properties"]["path"])


def test_every_lead_starts_with_identify_then_group(sample: list[dict]) -> None:
    firsts: dict[str, list[str]] = {}
    for message in sample:
        if "userId" in message:
            firsts.setdefault(message["userId"], []).append(message["type"])
    assert len(firsts) == 150
    assert all(types[:2] == ["identify", "group"] for types in firsts.values())


def test_buyers_and_tire_kickers(sample: list[dict]) -> None:
    events = Counter(message.get("event") for message in sample)
    buyers = {m["userId"] for m in sample if m.get("event") == "Demo Requested"}
    assert 5 <= len(buyers) <= 40  # about 10% of 150 leads
    assert events["Qualification Updated"] and events["Lead Accepted"]
    assert events["Email Opened"] > events["Demo Requested"]
    criteria = [m["properties"] for m in sample if m.get("event") == "Qualification Updated"]
    assert all(c["framework"] == "BANT" and c["criteria"] for c in criteria)
    assert any(m.get("anonymousId", "").startswith("anon-") for m in sample)


def test_some_exact_duplicates() -> None:
    messages = list(generate(20_000, 500, seed=5))
    ids = Counter(message["messageId"] for message in messages)
    resent = [message_id for message_id, count in ids.items() if count > 1]
    assert 0 < len(resent) < 0.03 * len(messages)
    copies = [m for m in messages if m["messageId"] == resent[0]]
    assert all(copy == copies[0] for copy in copies)


def test_messages_are_json(sample: list[dict]) -> None:
    for message in sample:
        assert json.loads(json.dumps(message)) == message


def test_live_is_stamped_now_and_has_buyers() -> None:
    before = datetime.now(UTC)
    messages = list(itertools.islice(live(seed=2), 400))
    assert all(datetime.fromisoformat(m["timestamp"]) >= before for m in messages)
    assert any(m.get("event") == "Demo Requested" for m in messages[:150])
    assert any(m.get("event") == "Lead Accepted" for m in messages[:300])


def test_cli_writes_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    command = [
        sys.executable,
        "-m",
        "streams.traffic",
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
    """Regenerate with `python -m streams.traffic --messages 300 --leads 20 --seed 7`."""
    lines = (ROOT / "examples" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines[:300]] == list(generate(300, 20, seed=7))
    assert len(lines) == 303
