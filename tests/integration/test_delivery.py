"""What Kafka refuses is not lost: the worker stops before its message counts as done.

The output topic here takes records of at most 200 bytes, and a transition
or a dead letter is bigger, so the broker refuses the worker's first one.
Had the worker committed the offset of the message behind it (with its
state, if any), nothing would ever send that record again. It must stop
instead, and once the topic takes such records a new worker sends it.
A dead letter changes no lead: its flush has no state to write, and must
still wait for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from scoring import Transition
from scoring.outputs import DeadLetter
from tests.integration.harness import Deployment, an_mql
from tests.integration.kafka_server import KafkaServer

A_BAD_LINE = json.dumps({"type": "track", "userId": "refused-2", "event": "No time, no id"})


@pytest.mark.parametrize("output", ["transitions", "dead letters"])
def test_a_record_kafka_refuses_stops_the_worker_and_is_sent_by_the_next(
    kafka: KafkaServer, tmp_path: Path, output: str
) -> None:
    deployment = Deployment(kafka, tmp_path)
    if output == "transitions":
        topic, lines = deployment.transitions_topic, an_mql("refused-1", ("r1", "r2"))
    else:
        topic, lines = deployment.dlq_topic, [A_BAD_LINE]
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    too_small = {"max.message.bytes": "200"}
    admin.create_topics([NewTopic(topic, deployment.partitions, 1, topic_configs=too_small)])

    with deployment.worker("w1", LEADSCORE_COMMIT_INTERVAL="0.5") as worker:
        worker.wait_ready()
        deployment.produce(lines)
        assert worker.process is not None
        assert worker.process.wait(60) != 0, worker.log_tail()
        assert "MessageSizeTooLarge" in worker.log_tail(400)

    admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "1048588"})]
    )
    admin.close()
    with deployment.worker("w2") as worker:
        worker.wait_ready()
        records = [value for _, value in deployment.consume(topic, until=1, timeout=60)]
        if output == "transitions":
            got = [Transition.model_validate_json(value) for value in records]
            assert [(t.lead_id, t.from_stage, t.to_stage) for t in got] == [
                ("refused-1", "lead", "mql")
            ]
        else:
            letters = [DeadLetter.model_validate_json(value) for value in records]
            assert [letter.original_value for letter in letters] == [A_BAD_LINE.encode()]
        assert worker.stop() == 0
