"""A re-score's settings: its own group, state and output topics, named by the rules
version; the same version as the rules in use refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scoring import load_rules, parse_rules
from streams.processing.rescore import (
    OUTPUTS,
    RescoreRefused,
    as_worker,
    rescore_settings,
    version_tag,
)
from streams.settings import Settings

EXAMPLE = load_rules()
NEW = parse_rules(
    (Path(__file__).parents[2] / "scoring" / "example_rules.yaml")
    .read_text()
    .replace('version: "2026-12-example"', 'version: "2027-01 (draft)"')
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEADSCORE_"):
            monkeypatch.delenv(name)


def test_a_version_becomes_a_topic_suffix() -> None:
    assert version_tag("2027-01 (draft)") == "2027-01-draft"
    assert version_tag("v2.1_b") == "v2.1_b"
    with pytest.raises(RescoreRefused, match="names no topic"):
        version_tag(" ()")


def test_a_rescore_has_a_group_state_and_outputs_of_its_own() -> None:
    settings = Settings(app_id="acme", webhook_url="https://hooks.example/x")
    rescoring = rescore_settings(settings, NEW, EXAMPLE)
    assert rescoring.app_id == "acme-2027-01-draft"
    assert rescoring.data_dir == Path("data") / "rescore-2027-01-draft"
    for name in OUTPUTS:
        assert getattr(rescoring, name) == f"{getattr(settings, name)}-2027-01-draft"
    assert rescoring.input_topics == settings.input_topics
    assert rescoring.webhook_url is None  # alerts of the past go to its own topic only
    command = as_worker(rescoring)
    assert "LEADSCORE_APP_ID=acme-2027-01-draft " in command
    assert "LEADSCORE_TRANSITIONS_TOPIC=lead-transitions-2027-01-draft " in command
    assert command.endswith("leadscore worker")


def test_a_rescore_under_the_version_in_use_is_refused() -> None:
    with pytest.raises(RescoreRefused, match="the version of the rules in use"):
        rescore_settings(Settings(), EXAMPLE, EXAMPLE)
