"""Benchmark: sustained overload, twice the worker's capacity for minutes (not a test).

On Apache Kafka (`tests.integration.kafka_server`, started for the run), one leadscore worker
with the default group timeouts and commit interval, 4 partitions:

1. Capacity. A backlog of `--capacity-messages` generated messages is produced
   to a deployment of its own; a worker drains it, and its capacity C is the
   backlog over the time from the first committed progress until the committed
   offsets reach the end (as in `benchmarks/stream_throughput.py`).
2. Overload. A fresh deployment and worker; messages are produced at 2 C (or
   `--rate`) for `--minutes`, keyed by lead, event times a year ahead (so the
   wall-clock decay sweep stays out of it). Every 5 s: the consumer lag (end
   offsets minus committed, all partitions), the worker's resident memory
   (/proc/PID/status VmRSS) and the most records of a partition durable but not
   committed (`leadscore_uncommitted_records` on /metrics).
3. Drain. After the producer stops, the time until the committed offsets reach
   the end; then the verifier of the chaos suite compares every transition and
   each lead's last snapshot with `leadscore replay` of the same messages.

The producer shares the machine's cores with the worker and the broker, so the
worker's rate while overloaded is below C; the rate the producer reached is
printed. Run:

    .venv/bin/python benchmarks/overload.py [--minutes 5] [--rate R]
        [--capacity-messages 100000] [--leads 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests` is not an installed package
    sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaProducer  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.errors import CoordinatorNotAvailableError  # noqa: E402

from scoring import Transition, load_rules  # noqa: E402
from scoring.replay import Replay  # noqa: E402
from streams.dev.traffic import generate  # noqa: E402
from streams.kafka.topics import partition_for  # noqa: E402
from tests.chaos.suite import Run, produce, verify  # noqa: E402
from tests.integration.harness import Deployment, WorkerProcess, lead_of  # noqa: E402
from tests.integration.kafka_server import KafkaServer  # noqa: E402

PARTITIONS = 4
SAMPLE_S = 5.0
DEFAULTS = {  # a production worker's settings, not the tests' short timeouts
    "LEADSCORE_SESSION_TIMEOUT": "30",
    "LEADSCORE_HEARTBEAT_INTERVAL": "3",
    "LEADSCORE_REBALANCE_TIMEOUT": "30",
    "LEADSCORE_DECAY_CHECK_INTERVAL": "10",
}


def messages(count: int, leads: int, seed: int) -> list[str]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
    return [json.dumps(m) for m in generate(count, leads, seed=seed, start=start, span_days=30)]


class Offsets:
    """The group's committed offsets and the input's end offsets."""

    def __init__(self, deployment: Deployment) -> None:
        servers = deployment.kafka.bootstrap_servers
        self.group = deployment.app_id
        self.tps = [TopicPartition(deployment.input_topic, p) for p in range(PARTITIONS)]
        self.admin = KafkaAdminClient(bootstrap_servers=servers)
        self.consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)

    def committed(self) -> int:
        try:
            answer = self.admin.list_group_offsets({self.group: self.tps})
        except CoordinatorNotAvailableError:  # the group's first join is under way
            return 0
        offsets = answer.get(self.group, {})
        return sum(offsets[tp].offset for tp in self.tps if tp in offsets)

    def end(self) -> int:
        return sum(self.consumer.end_offsets(self.tps).values())

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


def drained(
    offsets: Offsets, worker: WorkerProcess, total: int, timeout: float
) -> tuple[float, int, float]:
    """Wait until `total` records are committed: (the time of the first progress, what
    was committed then, the time they all were), monotonic."""
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process is not None
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker stopped:\n{worker.log_tail()}")
        done = offsets.committed()
        now = time.monotonic()
        if first is None and done > 0:
            first = (now, done)
        if done >= total:
            return (*(first or (now, done)), now)
        time.sleep(0.2)
    raise TimeoutError(f"not drained in {timeout:g} s: {offsets.committed()} of {total}")


async def paced(deployment: Deployment, lines: list[str], seconds: float) -> None:
    """Every line, keyed by its lead, at a steady pace over `seconds`: a tenth of a
    second's worth at a time, in record batches per partition (kafka-python's producer
    tops out near the worker's own rate on this machine)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=deployment.kafka.bootstrap_servers, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        step = 0.1
        per_step = max(1, int(len(lines) * step / seconds))
        started = time.monotonic()
        pending = []
        for n, at in enumerate(range(0, len(lines), per_step)):
            batches: dict[int, Any] = {}
            for line in lines[at : at + per_step]:
                raw = line.encode()
                key = (lead_of(raw) or "").encode() or None
                partition = partition_for(key, PARTITIONS) if key else n % PARTITIONS
                batch = batches.setdefault(partition, producer.create_batch())
                if batch.append(key=key, value=raw, timestamp=None) is None:
                    pending.append(
                        await producer.send_batch(
                            batch, deployment.input_topic, partition=partition
                        )
                    )
                    batches[partition] = batch = producer.create_batch()
                    batch.append(key=key, value=raw, timestamp=None)
            for partition, batch in batches.items():
                pending.append(
                    await producer.send_batch(batch, deployment.input_topic, partition=partition)
                )
            ahead = started + (n + 1) * step - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def create_input(deployment: Deployment) -> None:
    """The input topic with its partitions (a producer's first send would make it with one)."""
    admin = KafkaAdminClient(bootstrap_servers=deployment.kafka.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(deployment.input_topic, PARTITIONS, 1)])
    finally:
        admin.close()


def capacity(kafka: KafkaServer, root: Path, args: argparse.Namespace) -> float:
    deployment = Deployment(kafka, root / "capacity", partitions=PARTITIONS)
    lines = messages(args.capacity_messages, args.leads, seed=2)
    create_input(deployment)
    produce(deployment, lines, {}, 0)
    offsets = Offsets(deployment)
    worker = deployment.worker("c1", **DEFAULTS).start()
    try:
        first, committed_first, done = drained(offsets, worker, len(lines), timeout=900)
        rate = (len(lines) - committed_first) / max(done - first, 1e-9)
        assert worker.stop(timeout=60) == 0, worker.log_tail()
    finally:
        worker.kill()
        offsets.close()
    return rate


@dataclass
class Sample:
    at: float
    lag: int
    rss_mib: float
    uncommitted: float


class Sampler(threading.Thread):
    """Every SAMPLE_S: the lag, the worker's memory, the most records not committed."""

    def __init__(self, offsets: Offsets, worker: WorkerProcess, started: float) -> None:
        super().__init__(daemon=True)
        self.offsets = offsets
        self.worker = worker
        self.started = started
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            lag = self.offsets.end() - self.offsets.committed()
            sample = Sample(
                time.monotonic() - self.started, lag, rss_mib(self.worker), most(self.worker)
            )
            self.samples.append(sample)
            print(
                f"  {sample.at:6.0f} s  lag {sample.lag:>9,}  rss {sample.rss_mib:7.1f} MiB  "
                f"uncommitted (most of a partition) {sample.uncommitted:,.0f}",
                flush=True,
            )

    def stop(self) -> None:
        self.done.set()
        self.join()


def rss_mib(worker: WorkerProcess) -> float:
    assert worker.process is not None
    status = Path(f"/proc/{worker.process.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) / 1024


def most(worker: WorkerProcess) -> float:
    try:
        url = f"http://127.0.0.1:{worker.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return float("nan")
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("leadscore_uncommitted_records{")
    ]
    return max(values, default=0.0)


def overload(kafka: KafkaServer, root: Path, rate: float, args: argparse.Namespace) -> int:
    deployment = Deployment(kafka, root / "overload", partitions=PARTITIONS)
    count = int(rate * args.minutes * 60)
    print(f"generating {count:,} messages over {args.leads:,} leads", flush=True)
    lines = messages(count, args.leads, seed=3)
    replay = Replay(load_rules(), stitch=False)  # as the stream scores, until it stitches
    expected = [t for t in replay.feed(lines) if isinstance(t, Transition)]
    offsets = Offsets(deployment)
    worker = deployment.worker("o1", **DEFAULTS).start()
    try:
        worker.wait_ready(timeout=120)
        started = time.monotonic()
        sampler = Sampler(offsets, worker, started)
        sampler.start()
        asyncio.run(paced(deployment, lines, args.minutes * 60))
        produced_s = time.monotonic() - started
        print(f"produced {count:,} in {produced_s:.0f} s ({count / produced_s:,.0f} msg/s; "
              f"asked {rate:,.0f})", flush=True)  # fmt: skip
        lag_at_end = offsets.end() - offsets.committed()
        *_, done = drained(offsets, worker, count, timeout=3600)
        sampler.stop()
        assert worker.stop(timeout=60) == 0, worker.log_tail()
    finally:
        worker.kill()
        offsets.close()
    run = Run(messages=count, leads=args.leads, partitions=PARTITIONS)
    verdict = verify(deployment, replay, expected, count, run)
    samples = sampler.samples
    during = [s for s in samples if s.at <= produced_s] or samples
    took = done - started
    print(
        f"lag when the producer stopped: {lag_at_end:,}; drained {took - produced_s:.0f} s "
        f"later (whole run {took:.0f} s, {count / took:,.0f} msg/s)"
    )
    top = max(s.rss_mib for s in samples)
    print(
        f"memory while overloaded: {during[0].rss_mib:.0f} MiB at {during[0].at:.0f} s, "
        f"{top:.0f} MiB at most, {samples[-1].rss_mib:.0f} MiB at the end"
    )
    print(f"most records of a partition durable but not committed: "
          f"{max(s.uncommitted for s in samples):,.0f}")  # fmt: skip
    for example in verdict.examples:
        print(example)
    print(verdict.line)
    return 0 if verdict.exact("at_least_once") else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=None, help="msg/s (default: 2 C)")
    parser.add_argument("--capacity-messages", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=20_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="leadscore-overload-"))
    print(f"workers' logs and data in {root}")
    with KafkaServer() as kafka:
        rate = args.rate
        if rate is None:
            c = capacity(kafka, root, args)
            print(f"capacity C: {c:,.0f} msg/s ({args.capacity_messages:,} messages backlog)")
            rate = 2 * c
        return overload(kafka, root, rate, args)


if __name__ == "__main__":
    raise SystemExit(main())
