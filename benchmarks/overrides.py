"""Benchmark: what the speed-only overrides of Faust internals buy, each against Faust's own
path, in one process (not a test).

`wait_first`: Faust's consumer hands each record that takes its per-record path
(changelog records while tables recover, sales-alerts for the webhook agent) to the
conductor inside `wait_first(deliver(record), suspend_flow.wait())`;
`DeliveringConsumer.wait_first` runs the delivery's first step inline and races only
a delivery that waits. Measured here on an unstarted worker consumer, with a delivery
that completes without waiting (as most do: the record goes straight into a buffer),
N calls each way, in turns, `--runs` times; CPU µs per call, medians.

    .venv/bin/python -m benchmarks.overrides [--calls N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from functools import partial
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

import streams.kafka.transport  # noqa: F401  (the entry points' module, imported as Faust would)


async def _delivered(record: int) -> int:
    return record


async def _calls(consumer: Any, own: bool, calls: int) -> float:
    # Faust's own: its aiokafka consumer's (mode's `Service.wait_first`).
    race = consumer.wait_first if own else partial(faust_aiokafka.Consumer.wait_first, consumer)
    started = time.process_time()
    for record in range(calls):
        results = await race(_delivered(record), consumer.suspend_flow.wait())
        assert results.done[0] is not None
    return time.process_time() - started


async def _measure(calls: int, runs: int) -> dict[bool, list[float]]:
    with tempfile.TemporaryDirectory() as data:
        app = faust.App(
            "overrides-bench", broker="leadscore://127.0.0.1:1", datadir=data, autodiscover=False
        )
        consumer: Any = app.consumer
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(runs):
            for own in (False, True):
                seconds[own].append(await _calls(consumer, own, calls) / calls * 1e6)
        return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    seconds = asyncio.run(_measure(args.calls, args.runs))
    faust_us, own_us = (statistics.median(seconds[own]) for own in (False, True))
    print(f"wait_first, {args.calls:,} calls x {args.runs} runs (CPU µs a call, medians):")
    print(f"  Faust's:      {faust_us:6.2f}  ({', '.join(f'{s:.2f}' for s in seconds[False])})")
    print(f"  leadscore's:  {own_us:6.2f}  ({', '.join(f'{s:.2f}' for s in seconds[True])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
