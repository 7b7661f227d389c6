"""Benchmark: `leadscore replay` throughput and peak memory (not a test).

Generates Segment traffic with `streams.dev.traffic` (seeded, so every run scores
the same file), runs `leadscore replay FILE > /dev/null` in a child process
several times, and reports messages per CPU-second of the child (its user +
system time: messages/s per core, since replay is single-threaded) and its
peak resident memory. With `--growth` it also replays files with the same
leads and 2x, 4x the messages, to show memory does not grow with the number
of messages per lead. With `--stitching` it replays the file with and without
identity stitching (`--no-stitch`), in turns, to show what stitching costs.
With `--whatif` it runs `leadscore whatif FILE --rules R --json` (the example
rules against a copy whose demo request is worth twice as much) and replay, in
turns: whatif scores every message under both rule sets.

    .venv/bin/python benchmarks/replay_throughput.py [--messages N] [--leads N] [--runs N]
    .venv/bin/python benchmarks/replay_throughput.py --stitching
    .venv/bin/python benchmarks/replay_throughput.py --whatif
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "out"
LEADSCORE = Path(sys.executable).with_name("leadscore")


def events_file(messages: int, leads: int, seed: int) -> Path:
    path = OUT / f"events-{messages}-{leads}-{seed}.jsonl"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        partial = path.with_suffix(".partial")
        subprocess.run(
            [sys.executable, "-m", "streams.dev.traffic", "--messages", str(messages),
             "--leads", str(leads), "--seed", str(seed), "--out", str(partial)],
            check=True,
        )  # fmt: skip
        partial.rename(path)
    return path


def replay_once(path: Path, *flags: str, command: str = "replay") -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds, peak RSS (KiB) and leads scored of one `leadscore replay`
    (or `command`: whatif)."""
    with open(os.devnull, "wb") as sink:
        started = os.times().elapsed
        child = subprocess.Popen(
            [str(LEADSCORE), command, str(path), *flags], stdout=sink, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = os.times().elapsed - started
    assert child.stderr is not None
    summary = child.stderr.read().decode().strip().splitlines()[-1]
    if status != 0:
        raise SystemExit(f"{command} failed: {summary}")
    leads = int(summary.split(" for ")[1].split()[0])  # "replayed N messages for M leads; ..."
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, leads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--growth", action="store_true", help="also replay 2x and 4x messages")
    parser.add_argument(
        "--stitching", action="store_true", help="with and without identity stitching, in turns"
    )
    parser.add_argument(
        "--whatif", action="store_true", help="whatif (two rule sets) and replay, in turns"
    )
    args = parser.parse_args()
    if args.whatif:
        whatif_cost(events_file(args.messages, args.leads, args.seed), args.messages, args.runs)
        return
    if args.stitching:
        stitching_cost(events_file(args.messages, args.leads, args.seed), args.messages, args.runs)
        return

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    # Anonymous visitors are leads of their own: the file's lead count grows with it.
    print("| messages | leads | msg/s per core (median) | best | wall s | MiB peak | KiB/lead |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    factors = (1, 2, 4) if args.growth else (1,)
    for factor in factors:
        messages = args.messages * factor
        path = events_file(messages, args.leads, args.seed)
        runs = [replay_once(path) for _ in range(args.runs)]
        rates = [messages / cpu for _, cpu, _, _ in runs]
        peak = max(rss for _, _, rss, _ in runs)
        leads = runs[0][3]
        print(
            f"| {messages:,} | {leads:,} | {statistics.median(rates):,.0f} | {max(rates):,.0f} "
            f"| {statistics.median(w for w, _, _, _ in runs):.1f} | {peak / 1024:.0f} "
            f"| {peak / leads:.1f} |",
            flush=True,
        )


def stitching_cost(path: Path, messages: int, runs: int) -> None:
    """msg/s per core of replay with stitching and with `--no-stitch`, runs interleaved."""
    rates: dict[str, list[float]] = {"stitching": [], "--no-stitch": []}
    leads: dict[str, int] = {}
    for _ in range(runs):
        for mode in rates:
            _, cpu, _, scored = replay_once(path, *([mode] if mode.startswith("--") else []))
            rates[mode].append(messages / cpu)
            leads[mode] = scored
    print("| replay | leads | msg/s per core (median) | best |")
    print("| --- | --- | --- | --- |")
    for mode, measured in rates.items():
        print(f"| {mode} | {leads[mode]:,} | {statistics.median(measured):,.0f} "
              f"| {max(measured):,.0f} |")  # fmt: skip
    cost = 1 - statistics.median(rates["stitching"]) / statistics.median(rates["--no-stitch"])
    print(f"stitching costs {cost:.1%} of replay's throughput")


def whatif_cost(path: Path, messages: int, runs: int) -> None:
    """msg/s per core of whatif (every message under two rule sets) and of replay, in turns."""
    example = Path(__file__).parents[1] / "scoring" / "example_rules.yaml"
    proposed = OUT / "rules-demo-x2.yaml"
    proposed.write_text(
        example.read_text()
        .replace(
            "event: Demo Requested\n      points: 40", "event: Demo Requested\n      points: 80"
        )
        .replace('version: "2026-12-example"', 'version: "demo-x2"')
    )
    commands = {
        "replay": ("replay", ()),
        "whatif": ("whatif", ("--rules", str(proposed), "--json")),
    }
    rates: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, flags) in commands.items():
            _, cpu, _, _ = replay_once(path, *flags, command=command)
            rates[name].append(messages / cpu)
    print("| command | msg/s per core (median) | best |")
    print("| --- | --- | --- |")
    for name, measured in rates.items():
        print(f"| {name} | {statistics.median(measured):,.0f} | {max(measured):,.0f} |")
    share = statistics.median(rates["whatif"]) / statistics.median(rates["replay"])
    print(f"whatif runs at {share:.0%} of replay's msg/s")


if __name__ == "__main__":
    main()
