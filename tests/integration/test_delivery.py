"""A transition Kafka refuses is not lost: the worker stops before its message counts as done.

The transitions topic here takes records of at most 200 bytes and a
transition is about a kilobyte, so the broker refuses the worker's first
transition. Had the worker committed the offset of the message behind it
(with its state), nothing would ever send that transition again. It must
stop instead, and once the topic takes transitions a new worker sends it.
"""

from __future__ import annotations

from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from scoring.state import Stage
from tests.integration.harness import Deployment, an_mql
from tests.kafka_server import KafkaServer


def test_a_transition_kafka_refuses_stops_the_worker_and_is_sent_later(
    kafka: KafkaServer, tmp_path: Path
) -> None:
    deployment = Deployment(kafka, tmp_path)
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    too_small = {"max.message.bytes": "200"}
    topic = deployment.transitions_topic
    admin.create_topics([NewTopic(topic, deployment.partitions, 1, topic_configs=too_small)])

    with deployment.worker("w1", LEADSCORE_COMMIT_INTERVAL="0.5") as worker:
        worker.wait_ready()
        deployment.produce(an_mql("refused-1", ("r1", "r2")))
        assert worker.process is not None
        assert worker.process.wait(60) != 0, worker.log_tail()
        assert "MessageSizeTooLarge" in worker.log_tail(400)

    admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "1048588"})]
    )
    admin.close()
    with deployment.worker("w2") as worker:
        worker.wait_ready()
        got = deployment.transitions(until=1, timeout=60)
        assert [(t.lead_id, t.from_stage, t.to_stage) for t in got] == [
            ("refused-1", Stage.LEAD, Stage.MQL)
        ]
        assert worker.stop() == 0
