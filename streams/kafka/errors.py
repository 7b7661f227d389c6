"""What the command line says when Kafka is not there or says no: one exception each, for
the worker, `send`, `tail` and `rescore` alike."""

from __future__ import annotations

from scoring.errors import LeadscoreError
from streams.settings import Settings


class BrokerUnreachable(LeadscoreError):
    """The Kafka broker did not answer."""


class AccessRefused(LeadscoreError):
    """The Kafka broker refused the security settings: the login, or its certificate."""


class TopicsRefused(LeadscoreError):
    """Kafka refused to set up leadscore's topics, or they do not fit the settings."""


def unreachable(settings: Settings, error: Exception) -> BrokerUnreachable:
    """The error for a broker that did not answer, naming where it was looked for."""
    servers = ", ".join(settings.bootstrap_servers)
    return BrokerUnreachable(f"cannot reach Kafka at {servers}: {error}")
