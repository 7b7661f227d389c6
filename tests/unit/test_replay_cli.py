"""`leadscore replay`: output shapes, as-of semantics, bad lines and exit status."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scoring.outputs import ScoreSnapshot, Transition

LINES = [
    {"type": "identify", "userId": "ada", "timestamp": "2026-11-01T09:00:00+00:00",
     "traits": {"email": "ada@acme.example", "title": "VP Engineering",
                "company": {"employees": 120, "industry": "Software"}}},
    {"type": "track", "event": "Demo Requested", "userId": "ada",
     "timestamp": "2026-11-01T10:00:00+00:00"},
    {"type": "page", "userId": "bob", "timestamp": "2026-11-02T10:00:00+00:00",
     "properties": {"path": "/pricing"}},
    {"type": "track", "event": "Lead Accepted", "userId": "ada",
     "timestamp": "2026-12-01T10:00:00+00:00"},
]  # fmt: skip


def write_events(path: Path, *, bad: bool = True) -> Path:
    rows = [json.dumps({**line, "messageId": f"m{i}"}) for i, line in enumerate(LINES)]
    if bad:
        rows.insert(1, "this is not json")
        rows.insert(3, json.dumps({"type": "purchase", "messageId": "x", "userId": "ada",
                                   "timestamp": "2026-11-01T09:30:00+00:00"}))  # fmt: skip
        rows.insert(4, "")
    path.write_text("\n".join(rows) + "\n")
    return path


def leadscore(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def test_prints_each_lead_as_of_the_latest_timestamp(tmp_path: Path) -> None:
    run = leadscore("replay", write_events(tmp_path / "e.jsonl", bad=False))
    assert run.returncode == 0, run.stderr
    leads = [ScoreSnapshot.model_validate_json(line) for line in run.stdout.splitlines()]
    assert [(s.lead_id, s.stage) for s in leads] == [("ada", "sql"), ("bob", "lead")]
    assert {s.as_of.isoformat() for s in leads} == {"2026-12-01T10:00:00+00:00"}
    assert leads[1].explanation.engagement[0].rule_id == "pricing-page"
    summary = "replayed 4 messages for 2 leads; 0 merges, 0 identity conflicts; 0 bad lines skipped"
    assert summary in run.stderr


def test_transitions_are_printed_in_the_topic_shape(tmp_path: Path) -> None:
    run = leadscore("replay", "--transitions", write_events(tmp_path / "e.jsonl"))
    assert run.returncode == 0, run.stderr
    transitions = [Transition.model_validate_json(line) for line in run.stdout.splitlines()]
    assert [(t.from_stage, t.to_stage, t.message_id) for t in transitions] == [
        ("lead", "mql", "m1"),
        ("mql", "lead", None),  # the demo request decays below 30 within the month
        ("lead", "sql", "m3"),  # accepted by sales straight from lead
    ]


def test_bad_lines_are_reported_with_their_line_numbers_and_counted(tmp_path: Path) -> None:
    run = leadscore("replay", write_events(tmp_path / "e.jsonl"))
    assert run.returncode == 0
    errors = run.stderr.splitlines()
    assert errors[0].startswith("line 2: Invalid JSON")
    assert errors[1].startswith("line 4: unknown type 'purchase'")
    assert errors[2] == (
        "replayed 4 messages for 2 leads; 0 merges, 0 identity conflicts; 2 bad lines skipped"
    )
    assert len(run.stdout.splitlines()) == 2


def test_as_of_leaves_later_messages_out_and_decays_to_it(tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.jsonl", bad=False)
    run = leadscore("replay", events, "--at", "2026-11-15T10:00:00Z")
    assert run.returncode == 0, run.stderr
    ada = ScoreSnapshot.model_validate_json(run.stdout.splitlines()[0])
    assert ada.stage == "lead"  # accepted only on 1 December; demoted by decay on the way
    assert ada.as_of.isoformat() == "2026-11-15T10:00:00+00:00"
    assert "1 after --at not applied" in run.stderr
    # Demo Requested (40 points) 14 days earlier, half-life 30 days.
    assert ada.engagement_score == pytest.approx(40 * 0.5 ** (14 / 30), abs=1e-3)

    transitions = leadscore("replay", events, "--at", "2026-11-15T10:00:00Z", "--transitions")
    demotion = Transition.model_validate_json(transitions.stdout.splitlines()[-1])
    assert (demotion.from_stage, demotion.to_stage, demotion.trigger) == ("mql", "lead", "decay")
    # 40 x 0.5^(d/30) = 30 (min_engagement 40 - margin 10) after d = 30 log2(4/3) days.
    demo_requested = datetime(2026, 11, 1, 10, tzinfo=UTC)
    crossing = demo_requested + timedelta(days=30 * math.log2(40 / 30))
    assert abs(demotion.occurred_at - crossing) <= timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "yesterday"], "not an ISO-8601 time"),
        (["--at", "2026-11-15T10:00:00"], "needs a UTC offset"),
        (["--rules", "missing.yaml"], "cannot read the file"),
    ],
)
def test_wrong_arguments_or_rules_exit_non_zero(
    tmp_path: Path, args: list[str], message: str
) -> None:
    run = leadscore("replay", write_events(tmp_path / "e.jsonl"), *args)
    assert run.returncode == 2
    assert message in run.stderr
    assert run.stdout == ""


def test_a_broken_rules_file_is_refused_before_any_event_is_read(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nstages: {mql: {min_fit: x}}\n")
    run = leadscore("replay", write_events(tmp_path / "e.jsonl"), "--rules", rules)
    assert run.returncode == 2
    assert "stages.mql.min_fit: Input should be a valid number" in run.stderr
    assert "stages.mql.min_engagement: Field required" in run.stderr
    assert "line 2" not in run.stderr


def test_a_missing_events_file_exits_non_zero(tmp_path: Path) -> None:
    run = leadscore("replay", tmp_path / "none.jsonl")
    assert run.returncode == 2
    assert "cannot read" in run.stderr


POPUP = Path(__file__).parents[1] / "fixtures" / "payloads" / "journeys" / "popup_signup.jsonl"


def test_transitions_show_the_merges_in_order_and_no_stitch_merges_nothing() -> None:
    run = leadscore("replay", POPUP, "--transitions")
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [("merge_id" in r, r.get("to_stage")) for r in records] == [(True, None), (False, "mql")]
    assert records[0]["survivor_id"] == records[1]["lead_id"] == "usr_01JB7ZK3Q8"
    assert "7 messages for 1 leads; 1 merges, 0 identity conflicts;" in run.stderr

    apart = leadscore("replay", POPUP, "--no-stitch")
    leads = [ScoreSnapshot.model_validate_json(line) for line in apart.stdout.splitlines()]
    assert {s.lead_id: s.stage for s in leads} == {
        "29be5d21-2981-4b38-94c2-771116e58928": "lead",
        "usr_01JB7ZK3Q8": "lead",
    }
    assert "replayed 7 messages for 2 leads; 0 bad lines skipped" in apart.stderr
