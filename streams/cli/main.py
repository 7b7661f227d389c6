"""The `leadscore` command line."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

from scoring import LeadscoreError, Stage, Transition, load_rules, sales_alert
from scoring.outputs import FollowUp
from scoring.replay import BadLine, Output, Replay
from scoring.rules import rule_changes
from streams.console import OUTPUTS


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
    replay = Replay(rules, at=args.at, stitch=args.stitch)
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
    printed = _alerts if args.alerts else _changes if args.transitions else None
    with source:
        for item in replay.feed(source):
            if isinstance(item, BadLine):
                print(f"line {item.line_number}: {item.reason}", file=sys.stderr)
            elif printed is not None:
                for record in printed(item):
                    out.write(record.model_dump_json().encode() + b"\n")
    snapshots, by_time = replay.finish()
    if printed is None:
        for record in snapshots:
            out.write(record.model_dump_json().encode() + b"\n")
    else:
        for item in by_time:
            for record in printed(item):
                out.write(record.model_dump_json().encode() + b"\n")
    out.flush()
    later = f", {replay.not_yet} after --at not applied" if args.at is not None else ""
    identities = replay.identities
    conflicts = sum(identities.conflicts.values())
    stitched = f"; {replay.merges} merges, {conflicts} identity conflicts" if args.stitch else ""
    deleted = f", {replay.deletions} deletions" if replay.deletions else ""
    print(
        f"replayed {replay.applied} messages for {len(replay.states)} leads{stitched}{deleted}; "
        f"{replay.bad} bad lines skipped{later}",
        file=sys.stderr,
    )
    return 0


def _whatif(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import open as progress_open

    from scoring.whatif import compare
    from streams.cli.reports import print_summary, render_html

    proposed = load_rules(args.rules)
    baseline = load_rules(args.baseline)
    gc.set_threshold(100_000, 50, 100)  # as replay: long-lived lead states
    errors = Console(stderr=True)

    def bad(line: BadLine) -> None:
        print(f"line {line.line_number}: {line.reason}", file=sys.stderr)

    try:
        if args.events == "-":
            report = compare(sys.stdin.buffer, baseline, proposed, at=args.at,
                             stitch=args.stitch, on_bad_line=bad)  # fmt: skip
        else:
            # A progress bar on stderr when it is a terminal (big files take minutes).
            with progress_open(
                args.events, "rb", description="replaying under both rule sets",
                console=errors, transient=True, disable=not errors.is_terminal,
            ) as source:  # fmt: skip
                report = compare(source, baseline, proposed, at=args.at,
                                 stitch=args.stitch, on_bad_line=bad)  # fmt: skip
    except OSError as error:
        print(f"leadscore whatif: cannot read {args.events}: {error.strerror}", file=sys.stderr)
        return 2
    if args.html is not None:
        try:
            args.html.write_text(render_html(report), "utf-8")
        except OSError as error:
            print(f"leadscore whatif: cannot write {args.html}: {error.strerror}", file=sys.stderr)
            return 2
    if args.json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        print_summary(report, Console())
    written = f"; report written to {args.html}" if args.html is not None else ""
    print(
        f"replayed {report.messages} messages for {report.leads} leads under both rule sets; "
        f"{report.bad_lines} bad lines skipped{written}",
        file=sys.stderr,
    )
    return 0


def _changes(item: Output) -> Iterator[BaseModel]:
    """--transitions: stage changes, merges and deletions."""
    if not isinstance(item, FollowUp):
        yield item


def _alerts(item: Output) -> Iterator[BaseModel]:
    """--alerts: what the stream sends to sales-alerts."""
    if isinstance(item, FollowUp):
        yield item
    elif isinstance(item, Transition) and item.to_stage is Stage.SQL:
        yield sales_alert(item)


def _worker(args: argparse.Namespace) -> int:
    from streams.settings import from_arguments

    settings = from_arguments(args)
    rules = load_rules(settings.rules)  # a broken file stops the worker before Kafka is touched
    from streams.app import create_app
    from streams.cli.clients import check_access
    from streams.kafka.topics import ensure_topics
    from streams.processing.rules_history import last_recorded, record
    from streams.worker import run

    check_access(settings)
    ensure_topics(settings)
    previous = last_recorded(settings)
    if previous is None or previous.fingerprint != rules.fingerprint:
        record(settings, rules)
    app = create_app(settings, rules)
    # As replay's: lead states and indexes live long, and are scanned in every
    # collection of the old generations (a tenth of the worker's time with the default
    # thresholds); what start-up built (modules, Faust's machinery) is never garbage.
    gc.set_threshold(100_000, 50, 100)
    gc.freeze()
    run(app, previous)
    return 0


def _rescore(args: argparse.Namespace) -> int:
    from streams.processing.rescore import RescoreRefused, rescore_settings
    from streams.settings import Settings, from_arguments

    settings = from_arguments(args)
    if args.rules is None:
        raise RescoreRefused("which rules? `leadscore rescore --rules NEW.yaml`")
    rules = load_rules(settings.rules)
    from streams.app import create_app
    from streams.cli.clients import check_access
    from streams.kafka.topics import ensure_topics
    from streams.processing.rescore import input_at_start, register_progress
    from streams.processing.rules_history import last_recorded, record
    from streams.worker import run

    check_access(settings)
    # In use: what the running workers last started with, else LEADSCORE_RULES (or the
    # example rules).
    in_use = last_recorded(settings) or load_rules(Settings().rules)
    rescoring = rescore_settings(settings, rules, in_use)
    ensure_topics(rescoring)
    record(rescoring, rules)
    start = input_at_start(rescoring)
    changes = "".join(f"\n  {change}" for change in rule_changes(in_use, rules)) or " none"
    print(
        f"leadscore rescore: rules {rules.version} (in use: {in_use.version}); changes:{changes}"
        f"\n{'resuming' if start.resumed else 'from the start of the input'} "
        f"({start.records} records there now), as consumer group {rescoring.app_id}, into "
        f"{rescoring.transitions_topic}, {rescoring.alerts_topic}, {rescoring.scores_topic}",
        file=sys.stderr,
    )
    app = create_app(rescoring, rules)
    register_progress(app, start)
    run(app)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from streams.dev import mode as dev
    from streams.settings import from_arguments

    settings = from_arguments(args)
    rules = load_rules(settings.rules)
    dev.run(settings, rules, broker_port=args.broker_port, demo=args.demo, rate=args.rate)
    return 0


def _send(args: argparse.Namespace) -> int:
    from streams.cli.clients import SendReport, send
    from streams.settings import from_arguments

    settings = from_arguments(args)
    interactive = sys.stderr.isatty()

    def progress(report: SendReport) -> None:
        if interactive:
            print(f"\rsent {report.sent:,}, rejected {report.rejected:,}", end="", file=sys.stderr)

    source: BinaryIO = sys.stdin.buffer if args.file == "-" else _open(args.file)
    with source:
        report = send(settings, source, topic=args.topic, progress=progress)
    if interactive:
        print(file=sys.stderr)
    topic = args.topic or settings.input_topics[0]
    print(f"sent {report.sent} messages to {topic}; {report.rejected} lines rejected",
          file=sys.stderr)  # fmt: skip
    return 0


def _tail(args: argparse.Namespace) -> int:
    from streams.cli.clients import tail
    from streams.settings import from_arguments

    settings = from_arguments(args)
    tail(
        settings,
        args.output,
        from_beginning=args.from_beginning,
        max_records=args.max,
        idle_timeout=args.idle_timeout,
    )
    return 0


def _open(path: str) -> BinaryIO:
    try:
        return Path(path).open("rb")
    except OSError as error:
        raise LeadscoreError(f"cannot read {path}: {error.strerror}") from None


def _history_arguments(
    parser: argparse.ArgumentParser, *, rules: str, rules_help: str, at_help: str
) -> None:
    """A history to score: the file, its rules (flag `rules`), the as-of time."""
    parser.add_argument(
        "events", metavar="EVENTS.jsonl", help="messages, one per line (- for stdin)"
    )
    parser.add_argument(
        rules,
        type=Path,
        default=os.environ.get("LEADSCORE_RULES") or None,
        help=f"{rules_help} (env LEADSCORE_RULES, default: the example rules)",
    )
    parser.add_argument(
        "--at",
        type=_iso_time,
        metavar="ISO-TIME",
        help=f"{at_help} (default: the latest timestamp in the file)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore", description="Real-time lead qualification over Kafka."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = commands.add_parser(
        "replay",
        help="score a file of messages offline, with the same core as the stream",
        description="Score a JSONL file of Segment-spec messages offline and print one JSON "
        "object per line: each lead as of --at, or with --transitions each stage change (with "
        "--alerts, each sales alert).",
    )
    _history_arguments(
        replay,
        rules="--rules",
        rules_help="rules file",
        at_help="as-of time: later messages are not applied, engagement decays to it",
    )
    replay.add_argument(
        "--transitions",
        action="store_true",
        help="print each transition, merge and deletion instead of the leads",
    )
    replay.add_argument(
        "--alerts",
        action="store_true",
        help="print what goes to sales-alerts instead: each change to sql, and the sales "
        "follow-up of each (SLA met, breached, escalated)",
    )
    replay.add_argument(
        "--no-stitch",
        dest="stitch",
        action="store_false",
        help="score every message under its own userId (else anonymousId), merging no "
        "identities: as the stream worker scores until it stitches too",
    )
    replay.set_defaults(run=_replay)

    whatif = commands.add_parser(
        "whatif",
        help="replay history under new rules and the current ones, and compare",
        description="Replay a JSONL file of messages under the rules you propose (--rules) and "
        "the baseline (--baseline, default the configured or example rules), in one pass, and "
        "report the difference: leads per stage, the leads that change stage and why, mql and "
        "sql counts and conversion, transitions per week, per-rule figures, score "
        "distributions. A terminal summary; --json for the data; --html for a self-contained "
        "report with charts.",
    )
    whatif.add_argument("--rules", type=Path, required=True, help="the proposed rules file")
    _history_arguments(
        whatif,
        rules="--baseline",
        rules_help="the rules to compare with",
        at_help="as-of time for both",
    )
    whatif.add_argument("--json", action="store_true", help="print the report as JSON")
    whatif.add_argument("--html", type=Path, metavar="FILE", help="also write an HTML report")
    whatif.add_argument(
        "--no-stitch", dest="stitch", action="store_false", help="as replay's --no-stitch"
    )
    whatif.set_defaults(run=_whatif)

    from streams.settings import CONNECTION, OUTPUT_TOPICS, add_arguments

    worker = commands.add_parser(
        "worker",
        help="run a Faust worker against the configured Kafka",
        description="Run the stream processor: every setting is a flag and a LEADSCORE_ "
        "environment variable; flags win.",
    )
    add_arguments(worker)
    worker.set_defaults(run=_worker)

    rescore = commands.add_parser(
        "rescore",
        help="score the retained input again under new rules, beside the running worker",
        description="Re-score the input topics from their start under --rules (the new rules; "
        "the rules in use are LEADSCORE_RULES, else the example rules), as a worker of its own: "
        "its own consumer group and output topics, each named by the new rules' version "
        "(lead-transitions-<version>, ...). It logs its progress, says when it has caught up, "
        "and goes on with new input; the README describes the switch-over. Refused when the "
        "input's history was deleted (a partition beginning past offset 0).",
    )
    add_arguments(rescore)
    rescore.set_defaults(run=_rescore)

    dev = commands.add_parser(
        "dev",
        help="run everything on this machine: embedded broker, worker, web views",
        description="Start an embedded Kafka-compatible broker (in memory), a worker and its "
        "web server, and show each transition as it happens. Ctrl-C stops everything.",
    )
    dev.add_argument("--demo", action="store_true", help="feed live synthetic traffic")
    dev.add_argument("--rate", type=float, default=5.0, help="demo messages per second")
    dev.add_argument("--broker-port", type=int, default=9092, help="port of the embedded broker")
    add_arguments(dev)
    dev.set_defaults(run=_dev)

    send = commands.add_parser(
        "send",
        help="produce a JSONL file of messages to Kafka, validating each first",
        description="Validate each line and produce it to the input topic, keyed by its "
        "lead id. Bad lines are reported and skipped; an unreachable broker is an error.",
    )
    send.add_argument("file", metavar="FILE", help="messages, one per line (- for stdin)")
    send.add_argument("--topic", help="topic to produce to (default: the first input topic)")
    add_arguments(send, only=(*CONNECTION, "input_topics"))
    send.set_defaults(run=_send)

    tail = commands.add_parser(
        "tail",
        help="follow an output topic, one readable line per record",
        description="Follow lead-transitions (or another output topic) and print each record "
        "as one line.",
    )
    tail.add_argument("--output", choices=OUTPUTS, default="transitions", help="which topic")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--max", type=int, help="stop after this many records")
    tail.add_argument(
        "--idle-timeout", type=float, help="stop after this many seconds without a record"
    )
    add_arguments(tail, only=(*CONNECTION, *OUTPUT_TOPICS))
    tail.set_defaults(run=_tail)
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
