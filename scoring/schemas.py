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

from scoring.api import (
    ApiError,
    FunnelView,
    LeadView,
    RecentTransitions,
    TopLeads,
    WaitingForSales,
)
from scoring.messages import MESSAGE_ADAPTER
from scoring.normalize import END_INSTANT, ID_FIELDS, MILLISECONDS_ABOVE, TIME_FIELDS
from scoring.outputs import (
    SALES_ALERT_ADAPTER,
    DeadLetter,
    LeadDeletion,
    LeadMerge,
    ScoreSnapshot,
    Transition,
)


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema."""
    found: dict[str, dict[str, Any]] = {
        "message.schema.json": accepted_input(MESSAGE_ADAPTER.json_schema()),
        "transition.schema.json": Transition.model_json_schema(),
        "score-snapshot.schema.json": ScoreSnapshot.model_json_schema(),
        "sales-alert.schema.json": SALES_ALERT_ADAPTER.json_schema(),
        "dead-letter.schema.json": DeadLetter.model_json_schema(),
        "lead-merge.schema.json": LeadMerge.model_json_schema(),
        "lead-deletion.schema.json": LeadDeletion.model_json_schema(),
        "api-lead.schema.json": LeadView.model_json_schema(),
        "api-top-leads.schema.json": TopLeads.model_json_schema(),
        "api-sales-waiting.schema.json": WaitingForSales.model_json_schema(),
        "api-funnel.schema.json": FunnelView.model_json_schema(),
        "api-recent-transitions.schema.json": RecentTransitions.model_json_schema(),
        "api-error.schema.json": ApiError.model_json_schema(),
    }
    for name, schema in found.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = name
    return found


def accepted_input(canonical: dict[str, Any]) -> dict[str, Any]:
    """What the parser accepts, from the canonical message's schema: a message as real
    pipelines send it (scoring.normalize), or a `{"batch": [...]}` body of them.

    Looser than the parser where JSON Schema cannot say it simply (a placeholder id is
    valid JSON here and identifies nobody there): the parser never accepts more.
    """
    definitions = canonical.pop("$defs")
    for name in canonical["discriminator"]["mapping"]:
        message = definitions[name.capitalize()]
        fields = message["properties"]
        canonical_time = fields["timestamp"]
        fields["timestamp"] = {"anyOf": [canonical_time, *_OTHER_TIMES]}
        for other in TIME_FIELDS:
            fields[other] = {"description": f"the event time when `timestamp` is absent: {_CHAIN}"}
        fields["messageId"] = {
            "anyOf": [{"type": "string", "maxLength": 1024}, {"type": "integer"}, {"type": "null"}],
            "description": "dedupe key; absent, empty or null: derived from the content",
        }
        for id_field in ID_FIELDS:
            if id_field in fields:
                fields[id_field] = _with_integers(fields[id_field])
        for object_field in ("context", "integrations"):
            declared = fields.get(object_field, {"type": "object"})
            fields[object_field] = {
                "anyOf": [declared, {"type": "null"}, {"type": "array", "maxItems": 0}],
                "description": "null or an empty list (PHP's empty object) counts as absent",
            }
        message["required"] = [
            field for field in message["required"] if field not in ("messageId", "timestamp")
        ]
        message["anyOf"] = [
            {"required": [field], "properties": {field: {"not": {"type": "null"}}}}
            for field in ("timestamp", *TIME_FIELDS)
        ]
    definitions["Message"] = canonical
    definitions["Batch"] = {
        "type": "object",
        "description": "a batch body (Segment's and RudderStack's HTTP API): its messages, "
        "in order; its context, integrations, sentAt and receivedAt apply to items that "
        "lack them",
        "required": ["batch"],
        "not": {"required": ["type"]},
        "properties": {
            "batch": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Message"}},
            "context": {"type": "object"},
            "integrations": {"type": "object"},
            "sentAt": {"description": "applies to items that lack one"},
            "receivedAt": {"description": "applies to items that lack one"},
        },
    }
    return {
        "anyOf": [{"$ref": "#/$defs/Message"}, {"$ref": "#/$defs/Batch"}],
        "$defs": definitions,
    }


_CHAIN = (
    "receivedAt - (sentAt - originalTimestamp) when all three are there, else "
    "originalTimestamp, receivedAt or sentAt, the first one present"
)
_OTHER_TIMES = [
    {
        "type": "string",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?$",
        "description": "an ISO date-time with no offset: UTC",
    },
    {
        "type": "number",
        "minimum": 0,
        "exclusiveMaximum": END_INSTANT,
        "description": "epoch seconds",
    },
    {
        "type": "number",
        "exclusiveMinimum": MILLISECONDS_ABOVE,
        "exclusiveMaximum": END_INSTANT * 1000,
        "description": "epoch milliseconds (a number above 1e11)",
    },
    {"type": "null", "description": "absent: " + _CHAIN},
]


def _with_integers(field: dict[str, Any]) -> dict[str, Any]:
    """An id field that may also be a whole number (it becomes a string)."""
    options = field.get("anyOf", [{"type": field.get("type")}])
    kept = {key: value for key, value in field.items() if key not in ("anyOf", "type")}
    strings = [
        {key: value for key, value in option.items() if key != "minLength"}
        for option in options
        if option.get("type") == "string"
    ]
    others = [option for option in options if option.get("type") != "string"]
    return {**kept, "anyOf": [*strings, {"type": "integer"}, *others]}


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
