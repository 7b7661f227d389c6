"""The worker's metrics that are not plain counters."""

from __future__ import annotations

from faust.types import TP

from streams.metrics import Metrics


def uncommitted(metrics: Metrics, topic: str, partition: int) -> float | None:
    value = metrics.registry.get_sample_value(
        "leadscore_uncommitted_records", {"topic": topic, "partition": str(partition)}
    )
    return value


def test_uncommitted_records_grow_while_a_partition_commits_nothing() -> None:
    metrics = Metrics()
    metrics.committing({TP("in", 0): 100, TP("in", 1): 50}, {("in", 0): 99, ("in", 1): 80})
    assert uncommitted(metrics, "in", 0) == 0  # committed up to its durable state
    assert uncommitted(metrics, "in", 1) == 31  # 50..80 durable, not committed
    # Partition 1 commits nothing new while its durable state moves on.
    metrics.committing({TP("in", 0): 200}, {("in", 0): 199, ("in", 1): 400})
    assert uncommitted(metrics, "in", 0) == 0
    assert uncommitted(metrics, "in", 1) == 351
    # A partition never committed here is not guessed at.
    metrics.committing({}, {("in", 2): 10})
    assert uncommitted(metrics, "in", 2) is None
