"""The `leadscore` command line."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from scoring import LeadscoreError, load_rules
from scoring.replay import BadLine, Replay


def _iso_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset, e.g. {text}+00:00 or {text}Z")
    return moment.timestamp()


def _replay(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules)
    # Lead states live until the end: scanning them in every young-generation
    # collection costs more than a third of the run.
    gc.set_threshold(100_000, 50, 100)
    replay = Replay(rules, at=args.at)
    out = sys.stdout.buffer
    source: BinaryIO
    if args.events == "-":
        source = sys.stdin.buffer
    else:
        try:
            source = Path(args.events).open("rb")  # noqa: SIM115 - closed below
        except OSError as error:
            print(f"leadscore replay: cannot read {args.events}: {error.strerror}", file=sys.stderr)
            return 2
    with source:
        for item in replay.feed(source):
            if isinstance(item, BadLine):
                print(f"line {item.line_number}: {item.reason}", file=sys.stderr)
            elif args.transitions:
                out.write(item.model_dump_json().encode() + b"\n")
    snapshots, demotions = replay.finish()
    for record in demotions if args.transitions else snapshots:
        out.write(record.model_dump_json().encode() + b"\n")
    out.flush()
    later = f", {replay.not_yet} after --at not applied" if args.at is not None else ""
    print(
        f"replayed {replay.applied} messages for {len(replay.states)} leads; "
        f"{replay.bad} bad lines skipped{later}",
        file=sys.stderr,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from streams.settings import from_arguments

    settings = from_arguments(args)
    rules = load_rules(settings.rules)  # a broken file stops the worker before Kafka is touched
    from streams.app import create_app
    from streams.topics import ensure_topics
    from streams.worker import run

    ensure_topics(settings)
    run(create_app(settings, rules))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore", description="Real-time lead qualification over Kafka."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = commands.add_parser(
        "replay",
        help="score a file of messages offline, with the same core as the stream",
        description="Score a JSONL file of Segment-spec messages offline and print one JSON "
        "object per line: each lead as of --at, or with --transitions each stage change.",
    )
    replay.add_argument(
        "events", metavar="EVENTS.jsonl", help="messages, one per line (- for stdin)"
    )
    replay.add_argument("--rules", type=Path, help="rules file (default: the example rules)")
    replay.add_argument(
        "--at",
        type=_iso_time,
        metavar="ISO-TIME",
        help="as-of time: later messages are not applied, engagement decays to it "
        "(default: the latest timestamp in the file)",
    )
    replay.add_argument(
        "--transitions", action="store_true", help="print each transition instead of the leads"
    )
    replay.set_defaults(run=_replay)

    from streams.settings import add_arguments

    worker = commands.add_parser(
        "worker",
        help="run a Faust worker against the configured Kafka",
        description="Run the stream processor: every setting is a flag and a LEADSCORE_ "
        "environment variable; flags win.",
    )
    add_arguments(worker)
    worker.set_defaults(run=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except LeadscoreError as error:
        print(f"leadscore {args.command}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
