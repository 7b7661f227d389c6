"""`leadscore whatif`: the comparison of two rule sets over one history, on files whose
differences are known by construction, and its command line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from scoring import load_rules, parse_rules
from scoring.replay import Replay
from scoring.rules import rule_changes
from scoring.whatif import compare
from streams.cli.main import main
from streams.dev.traffic import generate

EXAMPLE = Path(__file__).parents[2] / "scoring" / "example_rules.yaml"
AT = "2026-11-02T09:00:00Z"


def identify(user: str, title: str) -> dict[str, object]:
    # Fit under the example rules: a decision maker's title (25) and an email (5): 30,
    # the mql fit line; without the title, 5.
    return {"type": "identify", "userId": user, "timestamp": AT,
            "traits": {"email": f"{user}@acme.example", "title": title}}  # fmt: skip


def track(user: str, event: str) -> dict[str, object]:
    return {"type": "track", "userId": user, "event": event, "timestamp": AT}


# ada: fit 30, a demo request (40): mql. bo: fit 30, an account (20): a lead, an mql once
# account-created is worth 40. cy: fit 5 and a demo request: a lead whatever the
# engagement. Every message at one instant: nothing decays.
HISTORY = [
    identify("ada", "VP Sales"), track("ada", "Demo Requested"),
    identify("bo", "Head of Growth"), track("bo", "Account Created"),
    identify("cy", "Intern"), track("cy", "Demo Requested"),
]  # fmt: skip
LINES = [json.dumps({**m, "messageId": f"m{i}"}) for i, m in enumerate(HISTORY)]


def changed_rules(text: str, old: str, new: str, version: str = "proposed") -> str:
    assert old in text, old
    return text.replace(old, new).replace('version: "2026-12-example"', f'version: "{version}"')


def test_a_rule_worth_twice_as_much_promotes_exactly_the_leads_it_lifts_over_the_line() -> None:
    proposed = parse_rules(
        changed_rules(
            EXAMPLE.read_text(),
            "event: Account Created\n      points: 20",
            "event: Account Created\n      points: 40",
        )
    )
    report = compare(LINES, load_rules(), proposed)

    assert report.changes == ["engagement rule account-created changed: points: 20.0 -> 40.0"]
    assert report.moves == {"lead>mql": 1}
    [bo] = report.changed
    assert (bo.lead_id, bo.baseline, bo.proposed) == ("bo", "lead", "mql")
    assert bo.engagement == (20.0, 40.0) and bo.fit == (30.0, 30.0)
    assert bo.rules == ["account-created"]
    assert (report.baseline.mql_leads, report.proposed.mql_leads) == (1, 2)
    assert report.baseline.stages == {"lead": 2, "mql": 1, "sql": 0, "disqualified": 0}
    assert report.proposed.stages == {"lead": 1, "mql": 2, "sql": 0, "disqualified": 0}
    [row] = [row for row in report.rules if row.rule_id == "account-created"]
    assert row.baseline is not None and row.proposed is not None
    assert (row.baseline.matched, row.baseline.points) == (1, 20.0)
    assert (row.proposed.matched, row.proposed.points) == (1, 40.0)
    assert report.weeks == {"2026-W45": {"baseline": {"mql": 1}, "proposed": {"mql": 2}}}


def test_a_raised_threshold_keeps_out_the_lead_just_under_it_and_names_the_setting() -> None:
    proposed = parse_rules(
        changed_rules(EXAMPLE.read_text(), "min_engagement: 40", "min_engagement: 50")
    )
    report = compare(LINES, load_rules(), proposed)

    assert report.changes == ["stages.mql.min_engagement: 40.0 -> 50.0"]
    assert report.moves == {"mql>lead": 1}
    [ada] = report.changed
    assert (ada.lead_id, ada.rules) == ("ada", ["stages.mql.min_engagement"])
    assert (report.baseline.mql_leads, report.proposed.mql_leads) == (1, 0)
    assert report.proposed.mql_to_sql is None


def test_a_new_disqualifier_disqualifies_the_leads_it_matches_and_is_named() -> None:
    disqualifier = (
        "    - id: no-sales-vps\n"
        '      where: {title: {matches: "^VP Sales$"}}\n'
        "      disqualify: true\n"
    )
    text = EXAMPLE.read_text()
    anchor = "    - id: competitor\n"
    proposed = parse_rules(changed_rules(text, anchor, disqualifier + anchor))
    report = compare(LINES, load_rules(), proposed)

    assert report.changes == ["fit rule no-sales-vps added"]
    assert report.moves == {"mql>disqualified": 1}
    [ada] = report.changed
    assert (ada.lead_id, ada.rules) == ("ada", ["no-sales-vps"])
    assert report.proposed.stages["disqualified"] == 1


def test_the_same_rules_change_nothing_and_each_side_is_a_replay_of_its_own() -> None:
    lines = [json.dumps(m) for m in generate(3000, 300, seed=5)]
    rules = load_rules()
    proposed = parse_rules(
        changed_rules(EXAMPLE.read_text(), "min_fit: 30", "min_fit: 20", "looser")
    )
    same = compare(lines, rules, rules)
    assert same.moves == {} and same.changed == [] and same.changes == []
    assert same.baseline == same.proposed.model_copy(update={"rules_version": rules.version})

    report = compare(lines, rules, proposed)
    for side, side_rules in ((report.baseline, rules), (report.proposed, proposed)):
        replay = Replay(side_rules)
        transitions = [t for t in replay.feed(lines) if hasattr(t, "to_stage")]
        snapshots, later = replay.finish()
        stages = Counter(s.stage.value for s in snapshots)
        assert side.stages == {stage: stages.get(stage, 0) for stage in side.stages}
        assert side.transitions == len(transitions) + len(
            [t for t in later if hasattr(t, "to_stage")]
        )
    assert report.moves and sum(report.moves.values()) == len(report.changed)


def test_rule_changes_name_each_rule_and_setting_that_differs() -> None:
    text = EXAMPLE.read_text()
    proposed = changed_rules(text, "    - id: email-bounced\n", "    - id: email-bounce\n")
    proposed = changed_rules(proposed, "half_life_days: 30", "half_life_days: 14")
    proposed = changed_rules(proposed, "limit: {count: 5, per_days: 30}\n    # A click",
                             "limit: {count: 3, per_days: 30}\n    # A click")  # fmt: skip
    assert rule_changes(load_rules(), parse_rules(proposed)) == [
        "engagement rule email-open changed: limit.count: 5 -> 3",
        "engagement rule email-bounced removed",
        "engagement rule email-bounce added",
        "engagement.half_life_days: 30.0 -> 14.0",
    ]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_command_prints_json_writes_html_and_reports_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write(tmp_path / "events.jsonl", [*LINES[:2], "not json", *LINES[2:]])
    stricter = changed_rules(EXAMPLE.read_text(), "min_engagement: 40", "min_engagement: 50")
    rules = write(tmp_path / "new.yaml", [stricter])
    html = tmp_path / "report.html"
    assert main(["whatif", str(events), "--rules", str(rules), "--json", "--html", str(html)]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["moves"] == {"mql>lead": 1}
    assert report["bad_lines"] == 1 and report["messages"] == 6
    assert "line 3: " in err
    assert "replayed 6 messages for 3 leads under both rule sets; 1 bad lines skipped" in err
    page = html.read_text()
    assert page.count("<svg") == 6 and "ada" in page and "http" not in page.split("<body>")[1]

    assert main(["whatif", str(events), "--rules", str(rules)]) == 0
    out, _ = capsys.readouterr()
    assert "mql>lead" in out and "stages.mql.min_engagement" in out


def test_the_command_refuses_missing_files_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write(tmp_path / "events.jsonl", LINES)
    assert main(["whatif", str(events), "--rules", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml:\n  - cannot read the file: No such file" in capsys.readouterr().err
    assert main(["whatif", str(tmp_path / "gone.jsonl"), "--rules", str(EXAMPLE)]) == 2
    assert "cannot read" in capsys.readouterr().err
