"""Prometheus metrics of a worker (GET /metrics).

The per-message counts and timings are plain Python numbers on the hot path
(a prometheus-client `labels(...).inc()` and `observe()` cost more than a
tenth of what handling a message does) and become metric families only when
/metrics is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping
from time import monotonic
from typing import Any

from faust.sensors.monitor import Monitor
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series are noise here

PROCESSING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages: Counter[str] = Counter()  # applied, duplicate, rejected, repartitioned...
        self.rejected: Counter[str] = Counter()  # by kind of problem
        self.transitions: Counter[tuple[str, str]] = Counter()  # by (from_stage, to_stage)
        self.follow_ups: Counter[str] = Counter()  # sla_met, sla_breach, sla_escalation
        self.merges = 0  # leads absorbed into another by this worker (stitching)
        self.identity_conflicts: Counter[str] = Counter()  # by kind (scoring.identity)
        # Processing time per message: counts per bucket (the last is +Inf), and the sum.
        self.processing_counts = [0] * (len(PROCESSING_BUCKETS) + 1)
        self.processing_sum = 0.0
        self.registry.register(_HotPathCollector(self))
        self.lag = Gauge(
            "leadscore_consumer_lag",
            "Records in an input partition not yet handled by this worker",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.committed: dict[tuple[str, int], int] = {}  # the last offsets committed
        self.uncommitted = Gauge(
            "leadscore_uncommitted_records",
            "Records of a partition whose effects are durable but whose offset is not "
            "committed yet (what a crash now would read again), as of the last commit",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.mql_crossings = Gauge(
            "leadscore_pending_decay_crossings",
            "Leads of this worker with a coming decay demotion (mql) or SLA breach or "
            "escalation (sql)",
            registry=self.registry,
        )
        self.sqls_waiting = Gauge(
            "leadscore_sqls_waiting",
            "SQLs of this worker no rep has acted on yet, by whether their SLA has run out",
            ["overdue"],
            registry=self.registry,
        )

    def handled(self, outcome: str, seconds: float) -> None:
        """One input record handled, with what came of it and how long it took."""
        self.messages[outcome] += 1
        self.processing_counts[bisect_left(PROCESSING_BUCKETS, seconds)] += 1
        self.processing_sum += seconds

    def committing(
        self, offsets: Mapping[Any, int], durable: Mapping[tuple[str, int], int]
    ) -> None:
        """At a commit of `offsets` (Faust's TPs -> next offset to read): how far each
        partition's committed offset is behind the records whose effects are durable (a
        partition whose commits stall grows here, commit after commit)."""
        committed = self.committed
        for tp, offset in offsets.items():
            committed[tp.topic, tp.partition] = offset
        for (topic, partition), last in durable.items():
            next_offset = committed.get((topic, partition))
            if next_offset is not None:
                behind = max(0, last + 1 - next_offset)
                self.uncommitted.labels(topic, str(partition)).set(behind)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _HotPathCollector:
    """The counters `Metrics` keeps as plain numbers, as Prometheus metric families."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self.metrics
        messages = CounterMetricFamily(
            "leadscore_messages", "Input records handled, by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(metrics.messages.items()):
            messages.add_metric([outcome], count)
        yield messages
        rejected = CounterMetricFamily(
            "leadscore_rejected_messages",
            "Input records sent to the dead-letter topic, by kind of problem",
            labels=["kind"],
        )
        for kind, count in sorted(metrics.rejected.items()):
            rejected.add_metric([kind], count)
        yield rejected
        transitions = CounterMetricFamily(
            "leadscore_transitions", "Stage changes emitted", labels=["from_stage", "to_stage"]
        )
        for (from_stage, to_stage), count in sorted(metrics.transitions.items()):
            transitions.add_metric([from_stage, to_stage], count)
        yield transitions
        follow_ups = CounterMetricFamily(
            "leadscore_sales_follow_ups",
            "Sales follow-ups of SQLs sent to sales-alerts: SLAs met, breached, escalated",
            labels=["kind"],
        )
        for kind in ("sla_met", "sla_breach", "sla_escalation"):
            follow_ups.add_metric([kind], metrics.follow_ups[kind])
        yield follow_ups
        merges = CounterMetricFamily(
            "leadscore_lead_merges", "Leads absorbed into another of the same person"
        )
        merges.add_metric([], metrics.merges)
        yield merges
        conflicts = CounterMetricFamily(
            "leadscore_identity_conflicts",
            "Links refused by the identity safety rules (scored without merging), by kind",
            labels=["kind"],
        )
        for kind in ("two_user_ids", "claimed", "anonymous_cap", "merge_cap"):
            conflicts.add_metric([kind], metrics.identity_conflicts[kind])
        yield conflicts
        cumulative, buckets = 0, []
        for bound, count in zip(
            [*map(str, PROCESSING_BUCKETS), "+Inf"], metrics.processing_counts, strict=True
        ):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "leadscore_processing_seconds",
            "Time to handle one input record (parse, score, store, emit)",
            buckets=buckets,
            sum_value=metrics.processing_sum,
        )


class LeanMonitor(Monitor):
    """Faust's monitor sensor without its per-record bookkeeping (counters, timings and
    deques per message and per event), which nothing in leadscore reads: its metrics
    are the ones above. What Faust itself reads is kept: when each partition's stream
    last took an event (its "stream is stuck" diagnostics)."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass
