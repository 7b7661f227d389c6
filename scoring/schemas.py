"""JSON Schemas of the input message, every topic value and the web API's answers,
generated from the models.

`python -m scoring.schemas [DIR]` writes them (default: schemas/); a test
checks that the committed files are current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from scoring.api import ApiError, FunnelView, LeadView, RecentTransitions, TopLeads
from scoring.messages import MESSAGE_ADAPTER
from scoring.outputs import DeadLetter, SalesAlert, ScoreSnapshot, Transition


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema."""
    found: dict[str, dict[str, Any]] = {
        "message.schema.json": MESSAGE_ADAPTER.json_schema(),
        "transition.schema.json": Transition.model_json_schema(),
        "score-snapshot.schema.json": ScoreSnapshot.model_json_schema(),
        "sales-alert.schema.json": SalesAlert.model_json_schema(),
        "dead-letter.schema.json": DeadLetter.model_json_schema(),
        "api-lead.schema.json": LeadView.model_json_schema(),
        "api-top-leads.schema.json": TopLeads.model_json_schema(),
        "api-funnel.schema.json": FunnelView.model_json_schema(),
        "api-recent-transitions.schema.json": RecentTransitions.model_json_schema(),
        "api-error.schema.json": ApiError.model_json_schema(),
    }
    for name, schema in found.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = name
    return found


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(render(schema), "utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
