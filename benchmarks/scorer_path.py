"""Benchmark: the scorer's own path, with and without stitching, in one process (not a test).

`benchmarks/stream_throughput.py` measures the whole worker on Apache Kafka, where the
round-to-round spread on a shared machine is larger than stitching's cost. This one
takes Kafka out, to show what stitching costs the scorer itself: the real `Scorer`
(`streams.processing.scorer`) and `Stitcher` handle `streams.dev.traffic.generate(N,
leads=L, seed=1)` as records of P input partitions, 500 records a partition at a time (a
fetch), then what the scorer held back (`LeadStore.send_held`) goes to in-memory
repartition partitions that are read in turn as the input is, until nothing is left.
Every 2,000 records the changes are "flushed": what is held is sent, and each changed
state is encoded and snapshotted (as `LeadStore._flush` does) into a dictionary that
stands for RocksDB. Sends to other topics are counted, not encoded further. CPU seconds
(`time.process_time`) per run, stitching off and on in turns, `--runs` times each;
medians.

What it leaves out is what Kafka costs: the records' fetch and decoding, the
producer, the changelogs, the commits. The difference between this and the stream
benchmark's figures is that part.

    .venv/bin/python benchmarks/scorer_path.py [--messages N] [--leads L] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import statistics
import time
import types
from typing import Any

import orjson

import streams.state.store
from scoring.engine import snapshot_json
from scoring.rules import load_rules
from scoring.state import encode_state
from streams.dev.traffic import generate
from streams.kafka.topics import partition_for
from streams.metrics import Metrics
from streams.processing.scorer import Scorer
from streams.state.store import Changes, LeadStore

PARTITIONS = 4
FETCH = 500
FLUSH_EVERY = 2_000
DATABASE: dict[tuple[str, int], dict[bytes, bytes]] = collections.defaultdict(dict)


class Topic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class Record:
    __slots__ = ("headers", "key", "offset", "partition", "topic", "value")

    def __init__(
        self, topic: str, partition: int, offset: int, key: bytes, value: bytes, headers: Any
    ) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.headers = key, value, headers


def _app(stitch: bool) -> Any:
    """What the scorer uses of `LeadscoreApp`, with Kafka replaced by lists."""
    app = types.SimpleNamespace(rules=load_rules(), sent=0)
    app.live = types.SimpleNamespace(
        metrics=Metrics(),
        positions={},
        index=lambda key, state: None,
        crossings=types.SimpleNamespace(set=lambda key, value: None),
    )
    app.settings = types.SimpleNamespace(partitions=PARTITIONS, stitch=stitch)
    for name in ("events", "repartition", "funnel_topic", "transitions", "alerts", "merges",
                 "dead_letters", "deletions", "identities", "recent", "leads"):  # fmt: skip
        setattr(app, name, Topic(name))
    app.repartitioned = collections.defaultdict(list)

    async def emit(
        topic: Topic, key: bytes, value: bytes, partition: Any = None, headers: Any = None
    ) -> None:
        if topic.name == "repartition":
            queue = app.repartitioned[partition]
            queue.append(Record("repartition", partition, len(queue), key, value, headers or []))
        app.sent += 1

    app.emit = emit
    app.store = LeadStore(app)
    return app


def _read(table: Topic, partition: int, key: bytes) -> bytes | None:
    return DATABASE[table.name, partition].get(key)


async def _flush(app: Any) -> None:
    store = app.store
    await store._send_held(store.changed.held)  # first, as `LeadStore._flush`
    for key, (partition, state) in store.changed.leads.items():
        if state is None:
            DATABASE["leads", partition].pop(key, None)
        else:
            DATABASE["leads", partition][key] = encode_state(state)
            snapshot_json(state, app.rules)
    for (name, key), (_, partition, value) in store.changed.values.items():
        value = value() if callable(value) else value
        if value is None:
            DATABASE[name, partition].pop(key, None)
        else:
            DATABASE[name, partition][key] = value
    store.changed = Changes()
    store.states.clear()


async def _run(stitch: bool, lines: list[bytes]) -> tuple[float, Any]:
    DATABASE.clear()
    app = _app(stitch)
    scorer = Scorer(app)
    inputs: dict[int, list[Record]] = collections.defaultdict(list)
    for line in lines:
        fields = orjson.loads(line)
        key = str(fields.get("userId") or fields["anonymousId"]).encode()
        partition = partition_for(key, PARTITIONS)
        queue = inputs[partition]
        queue.append(Record("events", partition, len(queue), key, line, []))
    read: collections.Counter[tuple[str, int]] = collections.Counter()
    handled = 0
    started = time.process_time()
    while True:
        progressed = False
        for partition in range(PARTITIONS):
            for name, queue in (("in", inputs[partition]), ("rep", app.repartitioned[partition])):
                at = read[name, partition]
                fetched = queue[at : at + FETCH]
                read[name, partition] += len(fetched)
                for record in fetched:
                    await scorer.handle(record)
                    handled += 1
                    if handled % FLUSH_EVERY == 0:
                        await _flush(app)
                if fetched:
                    progressed = True
                    await app.store.send_held()
        if not progressed:
            break
    await _flush(app)
    return time.process_time() - started, app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # The store reads RocksDB through this; here the dictionary stands for it.
    streams.state.store._read_store = _read  # type: ignore[assignment]
    lines = [orjson.dumps(message) for message in generate(args.messages, leads=args.leads, seed=1)]
    gc.set_threshold(100_000, 50, 100)  # as the worker's
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for run in range(args.runs):
        for stitch in (False, True):
            cpu, app = asyncio.run(_run(stitch, lines))
            seconds[stitch].append(cpu)
            counts = dict(app.live.metrics.messages.most_common(6))
            mode = "on" if stitch else "off"
            print(
                f"run {run + 1}, stitching {mode}: {cpu:.2f} CPU-s,"
                f" {cpu / len(lines) * 1e6:.1f} µs a message; {counts}"
            )
    off, on = (statistics.median(seconds[stitch]) for stitch in (False, True))
    per = 1e6 / len(lines)
    print(
        f"\nmedians: {off * per:.1f} µs a message without stitching, {on * per:.1f} with it:"
        f" stitching costs the scorer {(on - off) * per:.1f} µs a message ({on / off - 1:.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
