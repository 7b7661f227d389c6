"""`leadscore rescore` on Apache Kafka: the retained input scored again under new rules,
into topics named by their version, gives what `leadscore replay` gives under them; the
running worker goes on undisturbed; an input whose history was deleted is refused."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic

from tests.integration.harness import LEADSCORE, REPO, Deployment
from tests.integration.kafka_server import KafkaServer
from tests.integration.test_stream import (
    FAST_RULES,
    assert_same,
    deduplicated,
    expected,
    per_lead,
    recent_traffic,
    wait_until,
)

VERSION = "2026-12-example"
# Pricing pages and page visits count double: more leads reach mql, some later or sooner.
PRICING = 'properties.path: {starts_with: "/pricing"}\n      points: 15'
NEW_RULES = FAST_RULES.replace(f'version: "{VERSION}"', 'version: "2026-12 pricing x2"').replace(
    PRICING, PRICING.replace("15", "30")
)
TAG = "2026-12-pricing-x2"  # the version as a topic suffix


@pytest.fixture
def deployment(kafka: KafkaServer, tmp_path: Path) -> Deployment:
    """A deployment under the rules in use, and the new rules in `new.yaml` beside them."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(FAST_RULES)
    (tmp_path / "new.yaml").write_text(NEW_RULES)
    return Deployment(kafka, tmp_path, rules=rules)


def test_a_rescore_gives_what_replay_gives_under_the_new_rules(deployment: Deployment) -> None:
    new_rules = deployment.root / "new.yaml"
    lines = recent_traffic(600, 30, seed=41, span_s=90)
    old_want, _ = expected(lines)
    new_want, last_crossing = expected(lines, NEW_RULES)
    assert old_want != new_want  # the change makes a difference
    old_total = sum(map(len, old_want.values()))
    new_total = sum(map(len, new_want.values()))

    with deployment.worker("w1") as worker:
        worker.wait_ready()
        deployment.produce(lines)
        with deployment.rescore("rescore", new_rules) as rescore:
            rescore.wait_ready()
            wait_until(last_crossing + 3)
            got = deployment.distinct_transitions(
                until=new_total, timeout=60, topic=f"{deployment.transitions_topic}-{TAG}"
            )
            deadline = time.monotonic() + 30
            while not rescore.log_has("caught up with the input") and time.monotonic() < deadline:
                time.sleep(0.5)
            caught_up = rescore.log_has("caught up with the input")
            logs = f"rescore warned:\n{rescore.warnings()}\n{rescore.log_tail(20)}"
        old = deployment.distinct_transitions(until=old_total, timeout=30)
        assert worker.health() is not None
        joins = worker.log_path.read_text().count("Joined group")

    assert_same(per_lead(deduplicated(got)), new_want, logs)
    assert_same(per_lead(deduplicated(old)), old_want)
    assert joins == 1, "the running worker was rebalanced by the re-score"
    assert caught_up, f"the re-score did not say it caught up:\n{logs}"
    assert "rules 2026-12 pricing x2 (in use: 2026-12-example)" in rescore.log_path.read_text()
    assert "engagement rule pricing-page changed: points: 15.0 -> 30.0" in (
        rescore.log_path.read_text()
    )


def test_a_rescore_of_an_input_whose_history_was_deleted_is_refused(
    deployment: Deployment,
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=deployment.kafka.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(deployment.input_topic, deployment.partitions, 1)])
        deployment.produce(recent_traffic(100, 10, seed=43))
        admin.delete_records({TopicPartition(deployment.input_topic, 0): 3})
    finally:
        admin.close()
    env = {**deployment.env("rescore"), "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [*LEADSCORE, "rescore", "--rules", str(deployment.root / "new.yaml")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert "cannot re-score: the input's history was deleted" in run.stderr
    assert f"{deployment.input_topic}[0] from 3" in run.stderr
    assert "retention.ms=-1" in run.stderr


def test_a_rescore_under_the_version_in_use_is_refused(deployment: Deployment) -> None:
    same_version = deployment.root / "same.yaml"
    same_version.write_text(FAST_RULES.replace(PRICING, PRICING.replace("15", "30")))
    run = subprocess.run(
        [*LEADSCORE, "rescore", "--rules", str(same_version)],
        env=deployment.env("rescore"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert f"the new rules have the version of the rules in use ('{VERSION}')" in run.stderr
