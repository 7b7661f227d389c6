"""The committed JSON Schemas are the ones the models generate."""

from __future__ import annotations

from pathlib import Path

from scoring.schemas import render, schemas

SCHEMAS = Path(__file__).parents[2] / "schemas"


def test_committed_schemas_are_current() -> None:
    expected = schemas()
    assert sorted(path.name for path in SCHEMAS.glob("*.json")) == sorted(expected)
    for name, schema in expected.items():
        assert (SCHEMAS / name).read_text() == render(schema), (
            f"schemas/{name} is stale: run `make schemas`"
        )
