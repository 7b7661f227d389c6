"""Fixtures of the integration tests beside the session's Kafka broker (tests/conftest.py)."""

from tests.integration.browser import browser

__all__ = ["browser"]
