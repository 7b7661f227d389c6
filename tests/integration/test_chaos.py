"""The chaos suite's short run, in both guarantees (the long one: `make chaos`).

Workers of one group are killed with SIGKILL while a producer runs, restarted
with and without their data dir, and the verifier compares every transition
and each lead's last snapshot with replay (see tests/chaos/suite.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.suite import Run, chaos
from tests.integration.kafka_server import KafkaServer


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_workers_killed_while_a_producer_runs_lose_and_corrupt_nothing(
    kafka: KafkaServer, tmp_path: Path, guarantee: str
) -> None:
    # The short variant: 4 kills over 2 workers while 20,000 messages arrive in 40 s.
    run = Run(messages=20_000, leads=1_000, workers=2, kills=4, guarantee=guarantee, seconds=40)
    verdict = chaos(kafka, tmp_path, run)
    report = "\n".join([*run.log, *verdict.examples, verdict.line])
    assert verdict.exact(guarantee), report
    # The run did what it is for: every kill happened, and the verifier saw the outputs.
    assert sum(line.startswith("kill ") for line in run.log) == run.kills, report
