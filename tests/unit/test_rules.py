"""The rules file: schema, defaults, and errors that name every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring import RulesError, load_rules, parse_rules
from scoring.conditions import MISSING, compile_condition

MINIMAL = """
version: "1"
stages:
  mql: {min_fit: 30, min_engagement: 40}
"""


def test_example_rules_load_and_cover_the_b2b_signals() -> None:
    rules = load_rules()
    ids = {rule.id for rule in rules.spec.engagement.rules} | {r.id for r in rules.spec.fit.rules}
    assert {"email-open", "email-click", "signed-up", "pricing-page", "demo-page"} <= ids
    assert {"form-filled", "trial-started", "account-created", "signed-in"} <= ids
    assert {"unsubscribed", "email-bounced", "email-marked-spam"} <= ids
    assert {"company-size", "decision-maker", "target-industry", "competitor", "free-mail"} <= ids
    assert rules.half_life == 30 * 86_400
    assert rules.qualification.framework == "BANT"


def test_example_rules_score_segment_spec_events_and_traits() -> None:
    spec = load_rules().spec
    events = {rule.event: rule.points for rule in spec.engagement.rules if rule.event}
    assert events == {
        # Segment's Email spec
        "Email Opened": 2,
        "Email Link Clicked": 5,
        "Unsubscribed": -30,
        "Email Bounced": -20,
        "Email Marked as Spam": -40,
        # Segment's B2B SaaS spec
        "Signed Up": 10,
        "Account Created": 20,
        "Trial Started": 30,
        "Signed In": 3,
        # conversions
        "Form Submitted": 15,
        "Demo Requested": 40,
    }
    limited = {rule.id: (rule.limit.count, rule.limit.per_days) for rule in spec.engagement.rules
               if rule.limit}  # fmt: skip
    assert limited == {
        "email-open": (5, 30), "email-click": (5, 30), "pricing-page": (3, 7),
        "demo-page": (3, 7), "page-visit": (10, 7), "signed-up": (1, 30),
        "form-filled": (3, 30), "signed-in": (5, 7),
    }  # fmt: skip
    paths = {path for rule in spec.fit.rules for path in rule.where}
    assert paths == {"company.employees", "company.industry", "title", "email"}


def test_a_minimal_file_gets_the_documented_defaults() -> None:
    rules = parse_rules(MINIMAL)
    assert rules.half_life is None
    assert rules.spec.engagement.rules == []
    assert rules.qualification.framework == "BANT"
    assert rules.qualification.required == 3
    assert rules.mql_exit_line == 40


@pytest.mark.parametrize(
    ("framework", "required"), [("BANT", 3), ("CHAMP", 3), ("ANUM", 3), ("FAINT", 4), ("GPCT", 3)]
)
def test_require_defaults_to_three_quarters_of_the_criteria_rounded_up(
    framework: str, required: int
) -> None:
    rules = parse_rules(MINIMAL + f"qualification: {{framework: {framework}}}\n")
    assert rules.qualification.required == required


def test_every_problem_is_reported_with_its_path() -> None:
    broken = """
version: "1"
engagement:
  half_life_days: -3
  rules:
    - id: open
      points: 2
    - id: pricing
      type: page
      where: {properties.url: {contains: "/pricing", near: 3}}
      points: lots
fit:
  rules:
    - id: title
      where: {title: {matches: "(unclosed"}}
      points: 5
qualification: {framework: MEDDIC}
stages:
  mql: {min_fit: 30}
"""
    with pytest.raises(RulesError) as caught:
        parse_rules(broken, "broken.yaml")
    problems = caught.value.problems
    text = str(caught.value)
    assert "broken.yaml" in text
    expected = [
        "engagement.half_life_days",
        "engagement.rules[0]",
        "engagement.rules[1].where",
        "engagement.rules[1].points",
        "fit.rules[0].where",
        "qualification.framework",
        "stages.mql.min_engagement",
    ]
    for path in expected:
        assert any(problem.startswith(path) for problem in problems), (path, problems)
    assert any("event is required for a track rule" in p for p in problems)
    assert any("unknown operator 'near'" in p for p in problems)
    assert any("invalid regular expression" in p for p in problems)
    assert len(problems) == 7


@pytest.mark.parametrize(
    ("snippet", "reason"),
    [
        ("engagement: {rules: [{id: a, event: X, points: 1}, {id: a, event: Y, points: 2}]}",
         "rule id 'a' is used twice"),
        ("engagement: {rules: [{id: a, type: page, event: X, points: 1}]}",
         "event applies only to track rules"),
        ("fit: {rules: [{id: a, where: {x: {eq: 1}}, points: 5, disqualify: true}]}",
         "a disqualify rule has no points"),
        ("qualification: {framework: BANT, require: 5}", "require is 5, but BANT has 4"),
        ("engagement: {rules: [{id: a, event: X, points: 1, limit: {count: 0, per_days: 7}}]}",
         "engagement.rules[0].limit.count"),
        ("fit: {rules: [{id: a, where: {x: {in: 3}}, points: 1}]}", "x.in: expected a list"),
        ("surprise: true", "surprise: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_schema_violations_are_named(snippet: str, reason: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(MINIMAL + snippet + "\n")
    assert reason in str(caught.value)


def test_not_yaml_and_not_a_map_are_rejected() -> None:
    with pytest.raises(RulesError, match="not valid YAML"):
        parse_rules("version: [unclosed")
    with pytest.raises(RulesError, match="expected a YAML map"):
        parse_rules("- just\n- a list\n")


def test_a_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the file"):
        load_rules(tmp_path / "nope.yaml")


def test_the_fingerprint_follows_the_content_not_the_version() -> None:
    one = parse_rules(MINIMAL)
    same = parse_rules(MINIMAL)
    changed = parse_rules(MINIMAL.replace("min_fit: 30", "min_fit: 31"))
    assert one.fingerprint == same.fingerprint != changed.fingerprint


@pytest.mark.parametrize(
    ("operators", "value", "holds"),
    [
        ({"eq": "Software"}, "Software", True),
        ({"eq": "Software"}, "software", False),
        ({"eq": 50}, "50", True),
        ({"ne": "x"}, "y", True),
        ({"ne": "x"}, "x", False),
        ({"in": ["a", "b"]}, "b", True),
        ({"in": ["a", "b"]}, "c", False),
        ({"not_in": ["a", "b"]}, "c", True),
        ({"not_in": ["a", "b"]}, "a", False),
        ({"gt": 50}, 51, True),
        ({"gt": 50}, 50, False),
        ({"gte": 50}, 50, True),
        ({"gte": 50}, "250", True),
        ({"gte": 50}, "many", False),
        ({"gte": 50}, True, False),
        ({"lt": 10}, 9.5, True),
        ({"lte": 10}, 10, True),
        ({"lte": 10}, 11, False),
        ({"gte": 50, "lt": 500}, 499, True),
        ({"gte": 50, "lt": 500}, 500, False),
        ({"gte": "2026-01-01"}, "2026-06-01", True),
        ({"contains": "/pricing"}, "https://x/pricing?a", True),
        ({"contains": "/pricing"}, "https://x/blog", False),
        ({"contains": "vip"}, ["vip", "beta"], True),
        ({"starts_with": "/docs"}, "/docs/a", True),
        ({"starts_with": "/docs"}, "/blog/docs", False),
        ({"ends_with": "@rival.example"}, "a@rival.example", True),
        ({"matches": "(?i)\\bvp\\b"}, "VP Sales", True),
        ({"matches": "(?i)\\bvp\\b"}, "MVP", False),
        ({"exists": True}, "anything", True),
        ({"exists": True}, MISSING, False),
        ({"exists": False}, MISSING, True),
        ({"exists": False}, "x", False),
        ({"eq": "x"}, MISSING, False),
        ({"ne": "x"}, MISSING, False),
        ({"gt": 1}, None, False),
    ],
)
def test_condition_operators(operators: dict[str, object], value: object, holds: bool) -> None:
    assert compile_condition(operators)(value) is holds
