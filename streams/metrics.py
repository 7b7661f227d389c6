"""Prometheus metrics of a worker (GET /metrics)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series are noise here


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "leadscore_messages",
            "Input records handled, by outcome",
            ["outcome"],  # applied, duplicate, rejected, repartitioned
            registry=self.registry,
        )
        self.rejected = Counter(
            "leadscore_rejected_messages",
            "Input records sent to the dead-letter topic, by kind of problem",
            ["kind"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "leadscore_transitions",
            "Stage changes emitted",
            ["from_stage", "to_stage"],
            registry=self.registry,
        )
        self.processing = Histogram(
            "leadscore_processing_seconds",
            "Time to handle one input record (parse, score, store, emit)",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
            registry=self.registry,
        )
        self.lag = Gauge(
            "leadscore_consumer_lag",
            "Records in an input partition not yet handled by this worker",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.mql_crossings = Gauge(
            "leadscore_pending_decay_crossings",
            "MQL leads of this worker with a coming decay demotion",
            registry=self.registry,
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)
