"""Shared test set-up: the real Kafka broker of the session, hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.integration.kafka_server import KafkaServer


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaServer]:
    """A real single-node Apache Kafka broker (KRaft), shared by the whole test session.

    Integration tests use it; each test creates its own topics.
    """
    with KafkaServer() as server:
        yield server


# No deadlines: this machine is shared and noisy, and timing is not what we test.
# In CI the examples are derived from the tests, not drawn at random: a run that
# passed passes again on the same code (a developer's runs go on exploring).

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
