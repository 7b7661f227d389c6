"""The pure domain core of leadscore: messages, rules, scoring and stages.

No Faust, Kafka or clock in here: every function takes the lead's state, a
message (or an instant) and the rules, and returns the new state and the
stage changes.
"""

from scoring.engine import (
    advance,
    apply_message,
    bring_to_rules,
    decay,
    next_crossing,
    snapshot,
    snapshot_json,
)
from scoring.errors import LeadscoreError, RulesError
from scoring.messages import Message, Rejection, parse_message
from scoring.outputs import SalesAlert, ScoreSnapshot, Transition, sales_alert
from scoring.rules import Rules, load_rules, parse_rules
from scoring.state import LeadState, Position, Stage, decode_state, encode_state

__all__ = [
    "LeadState",
    "LeadscoreError",
    "Message",
    "Position",
    "Rejection",
    "Rules",
    "RulesError",
    "SalesAlert",
    "ScoreSnapshot",
    "Stage",
    "Transition",
    "advance",
    "apply_message",
    "bring_to_rules",
    "decay",
    "decode_state",
    "encode_state",
    "load_rules",
    "next_crossing",
    "parse_message",
    "parse_rules",
    "sales_alert",
    "snapshot",
    "snapshot_json",
]
