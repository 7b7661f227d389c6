"""The pinned libraries are the versions leadscore's overrides of their internals expect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.kafka.pins import WRITTEN_FOR, mismatches

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_the_installed_libraries_are_those_the_overrides_were_written_for() -> None:
    assert mismatches() == [], "\n".join(mismatches())


def test_pyproject_pins_exactly_the_versions_the_overrides_were_written_for() -> None:
    text = PYPROJECT.read_text()
    for name, expected in WRITTEN_FOR.items():
        pinned = re.search(rf'"{re.escape(name)}==([^"]+)"', text)
        assert pinned is not None, f"pyproject.toml does not pin {name} exactly"
        assert pinned.group(1) == expected, (
            f"pyproject.toml pins {name}=={pinned.group(1)}, but the overrides were written "
            f"for {expected}: re-read them (streams/kafka/pins.py) before moving the pin"
        )


def test_a_different_version_is_named_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = WRITTEN_FOR["aiokafka"]
    monkeypatch.setitem(WRITTEN_FOR, "aiokafka", "0.1.0")
    [line] = mismatches()
    assert line.startswith(f"aiokafka {installed} is installed, but") and "for 0.1.0" in line
