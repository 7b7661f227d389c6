"""The baseline contenders of `benchmarks/stream_throughput.py`, one per process (not a test).

    python benchmarks/faust_contenders.py raw|donothing|tutorial --broker kafka://HOST:PORT \
        --topic TOPIC --app-id GROUP --partitions P --datadir DIR --web-port PORT

- `raw`: an aiokafka consumer in group GROUP that reads every record and does
  nothing with it (the ceiling for a Python consumer); offsets auto-committed
  every `--commit-interval` seconds.
- `donothing`: a Faust app (id GROUP) whose agent (concurrency 1) iterates the
  stream and does nothing.
- `tutorial`: the typical tutorial design: the agent json-decodes each
  message, reads the lead's points from a `faust.Table` (RocksDB store),
  adds some points and writes them back: one table write (and one changelog
  record) per message.

Both Faust apps get the same Faust settings the leadscore worker uses on the
broker (store, partitions, group timeouts, producer batch size), plus
`broker_commit_interval = --commit-interval`. Each runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from typing import Any

# Points per track event name or message type: any small table will do.
POINTS = {
    "page": 1,
    "screen": 1,
    "identify": 0,
    "group": 0,
    "Email Opened": 2,
    "Email Clicked": 5,
    "Demo Requested": 40,
    "Unsubscribed": -30,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("contender", choices=["raw", "donothing", "tutorial"])
    parser.add_argument("--broker", required=True, help="kafka://host:port")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--app-id", required=True, help="Faust app id / consumer group")
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--datadir", required=True, help="Faust data directory (RocksDB)")
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--session-timeout", type=float, default=6.0)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--rebalance-timeout", type=float, default=10.0)
    parser.add_argument("--commit-interval", type=float, default=0.5)
    parser.add_argument("--producer-max-batch-size", type=int, default=16_384)
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def run_raw(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer

    async def consume() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        consumer = AIOKafkaConsumer(
            args.topic,
            bootstrap_servers=args.broker.partition("://")[2],
            group_id=args.app_id,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            auto_commit_interval_ms=int(args.commit_interval * 1000),
            session_timeout_ms=int(args.session_timeout * 1000),
            heartbeat_interval_ms=int(args.heartbeat_interval * 1000),
            rebalance_timeout_ms=int(args.rebalance_timeout * 1000),
        )
        await consumer.start()
        seen = 0
        first = last = 0.0
        in_first = 0
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                if not batches:
                    continue
                for records in batches.values():
                    for record in records:
                        if record.value is not None:
                            seen += 1
                last = time.monotonic()
                if not first:
                    first, in_first = last, seen
        finally:
            await consumer.stop()  # commits what was read
            # Its own clock, for when the backlog goes by within one commit interval:
            # the records after the first batch, and the time from that batch to the last.
            stats = {"records": seen - in_first, "seconds": last - first}
            print(f"raw-stats {json.dumps(stats)}", flush=True)

    asyncio.run(consume())


def faust_app(args: argparse.Namespace) -> Any:
    import faust

    return faust.App(
        args.app_id,
        broker=args.broker,
        store="rocksdb://",
        datadir=args.datadir,
        autodiscover=False,
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=args.session_timeout,
        broker_rebalance_timeout=args.rebalance_timeout,
        broker_heartbeat_interval=args.heartbeat_interval,
        broker_commit_interval=args.commit_interval,
        web_bind="127.0.0.1",
        web_port=args.web_port,
        web_host="127.0.0.1",
        producer_max_batch_size=args.producer_max_batch_size,
    )


def run_faust(args: argparse.Namespace) -> None:
    import faust

    app = faust_app(args)
    topic = app.topic(
        args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    if args.contender == "donothing":

        @app.agent(topic, name="donothing", concurrency=1)
        async def donothing(stream: Any) -> None:
            async for _value in stream:
                pass

    else:
        points = app.Table("points", default=int, partitions=args.partitions)

        @app.agent(topic, name="tutorial", concurrency=1)
        async def score(stream: Any) -> None:
            async for value in stream:
                event = json.loads(value)
                lead = event.get("userId") or event.get("anonymousId")
                kind = event.get("event") or event.get("type")
                points[lead] += POINTS.get(kind, 3)

    faust.Worker(app, loglevel=args.log_level, quiet=True).execute_from_commandline()


def main() -> None:
    args = parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.contender == "raw":
            run_raw(args)
        else:
            run_faust(args)


if __name__ == "__main__":
    main()
