"""The chaos suite: workers killed with SIGKILL while a producer runs, and a verifier.

Modelled on Kafka Streams' exactly-once system test. A seeded file of
generated messages (event times a year ahead, so the wall-clock decay sweep
stays out of the run; it has its own tests) is produced at a steady pace to
a real Apache Kafka while W workers of one consumer group score it. Every
few seconds one worker, chosen at random, is killed with SIGKILL and started
again: mostly after 0.5-3 s, sometimes after 8-15 s so that its partitions
move to the others, and sometimes with its data directory wiped, so that its
state comes from the changelogs. A tenth of the leads are keyed by another
lead's key, so their messages take the repartition topic. Once the producer
and the kills are done and the group has committed every input offset, the
workers stop (SIGTERM: the last snapshots go out), and the verifier compares
the transitions topic (read committed with exactly_once) with `leadscore
replay` of the same file, id by id and field by field, and each lead's last
`lead-scores` snapshot with replay's; before they stop, the funnel behind
`GET /funnel` is compared with the funnel of replay's transitions (a
mismatch counts as one wrong payload). The last line it prints:

    lost L, unexpected U, duplicates D, wrong payloads P

Run it (it starts its own Kafka; see README, "Delivery guarantees"):

    .venv/bin/python -m tests.chaos.suite --kills 20 --workers 2 --messages 100000
    .venv/bin/python -m tests.chaos.suite --guarantee exactly_once ...

Its exit status is 1 on any loss, unexpected transition or wrong payload, and
with exactly_once on any duplicate too.

With `--stitch` the workers stitch identities (LEADSCORE_STITCH=true) and replay
does too; both score with the example rules without their limits, and the
leads in a merge are compared by their final scores (see `verify`); the funnel
is not compared (its transitions depend on the order of a merge).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from scoring import Transition, decode_state, load_rules, snapshot
from scoring.funnel import Funnel, LeadFunnel
from scoring.outputs import FollowUp, LeadMerge
from scoring.replay import Replay
from streams.dev.traffic import generate
from streams.kafka.topics import partition_for
from tests.integration.harness import Deployment, WorkerProcess, lead_of
from tests.integration.kafka_server import KafkaServer


@dataclass
class Run:
    """One chaos run's parameters."""

    messages: int = 20_000
    leads: int = 1_000
    workers: int = 2
    kills: int = 4
    guarantee: str = "at_least_once"
    partitions: int = 4
    seed: int = 1
    seconds: float = 40.0  # how long the producer takes
    stitch: bool = False  # LEADSCORE_STITCH: one lead per person (see `verify`)
    log: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.log.append(line)
        print(line, flush=True)


@dataclass
class Verdict:
    lost: int
    unexpected: int
    duplicates: int
    wrong_payloads: int
    examples: list[str]
    # The most records of one partition durable but not committed, seen on /metrics.
    most_uncommitted: float = 0.0

    @property
    def line(self) -> str:
        return (
            f"lost {self.lost}, unexpected {self.unexpected}, duplicates {self.duplicates}, "
            f"wrong payloads {self.wrong_payloads}"
        )

    def exact(self, guarantee: str) -> bool:
        failed = self.lost or self.unexpected or self.wrong_payloads
        return not failed and not (guarantee == "exactly_once" and self.duplicates)


def traffic(run: Run) -> list[str]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
    return [
        json.dumps(message)
        for message in generate(run.messages, run.leads, seed=run.seed, start=start, span_days=30)
    ]


def chaos(kafka: KafkaServer, root: Path, run: Run) -> Verdict:
    """Produce, kill and restart, drain, stop; then verify."""
    rules_file = unlimited_rules(root) if run.stitch else None
    deployment = Deployment(
        kafka, root, partitions=run.partitions, guarantee=run.guarantee, rules=rules_file
    )
    lines = traffic(run)
    rng = random.Random(run.seed)
    leads = sorted({lead for line in lines if (lead := lead_of(line.encode()))})
    strays = {lead: rng.choice(leads) for lead in rng.sample(leads, len(leads) // 10)}
    settings = {"LEADSCORE_COMMIT_INTERVAL": "1", "LEADSCORE_SCORES_INTERVAL": "2"}
    if run.stitch:
        settings["LEADSCORE_STITCH"] = "true"
    replay = Replay(load_rules(rules_file), stitch=run.stitch)  # as the stream scores
    outputs = list(replay.feed(lines))
    expected = [t for t in outputs if isinstance(t, Transition)]
    follow_ups = [f for f in outputs if isinstance(f, FollowUp)]
    merges = [m for m in outputs if isinstance(m, LeadMerge)]
    workers = [deployment.worker(f"w{n}", **settings) for n in range(run.workers)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.wait_ready(timeout=120)
        producing = threading.Thread(
            target=produce, args=(deployment, lines, strays, run.seconds), daemon=True
        )
        producing.start()
        watching = Watch(workers)
        watching.start()
        kill_and_restart(deployment, workers, run, rng, settings)
        producing.join()
        drain(deployment, workers, run)
        watching.stop()
        # Stitching: the funnel counts transitions, which can come at other messages.
        funnel_problem = (
            None if run.stitch else settled_funnel(workers, replay, expected, follow_ups, run)
        )
        for worker in workers:
            code = worker.stop(timeout=90)
            if code != 0:
                run.say(f"{worker.name} stopped with {code}:\n{worker.log_tail(30)}")
    finally:
        for worker in workers:
            worker.kill()
    verdict = verify(deployment, replay, expected, merges, len(lines), run)
    if funnel_problem:
        verdict.wrong_payloads += 1
        verdict.examples.append(funnel_problem)
    verdict.most_uncommitted = watching.most
    late = sum(
        log.read_text(errors="replace").count(": reading again") for log in root.glob("*/*.log")
    )
    run.say(f"{late} fetches began past the next record and were read again from it")
    run.say(f"at most {watching.most:,.0f} records of a partition durable but not committed "
            f"(commit interval 1 s, {len(lines) / run.seconds / run.partitions:,.0f} "
            "records/s per partition)")  # fmt: skip
    return verdict


def unlimited_rules(root: Path) -> Path:
    """The example rules without their limits, for runs with stitching: a limit binds
    by the order a lead's firings come in, and the stream orders only each partition
    (a merge, a cookie's message forwarded after it, can come in another order than in
    replay's file), so only without limits is the final state the same in any order."""
    rules = yaml.safe_load(resources.files("scoring").joinpath("example_rules.yaml").read_text())
    for rule in rules["engagement"]["rules"]:
        rule.pop("limit", None)
    path = root / "rules-without-limits.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


class Watch(threading.Thread):
    """Reads the workers' `leadscore_uncommitted_records` every half second."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        super().__init__(daemon=True)
        self.workers = workers  # the list the kills update in place
        self.most = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            for worker in list(self.workers):
                try:
                    url = f"http://127.0.0.1:{worker.port}/metrics"
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        text = answer.read().decode()
                except OSError:
                    continue  # killed, or not up yet
                for line in text.splitlines():
                    if line.startswith("leadscore_uncommitted_records{"):
                        self.most = max(self.most, float(line.rsplit(" ", 1)[1]))

    def stop(self) -> None:
        self.done.set()
        self.join()


def produce(
    deployment: Deployment, lines: list[str], strays: dict[str, str], seconds: float
) -> None:
    """Every line, keyed by its lead (or the stray key), at a steady pace over `seconds`."""
    producer = KafkaProducer(
        bootstrap_servers=deployment.kafka.bootstrap_servers, acks="all", linger_ms=5
    )
    started = time.monotonic()
    per_line = seconds / max(1, len(lines))
    for number, line in enumerate(lines):
        lead = lead_of(line.encode())
        key = strays.get(lead, lead) if lead else None
        producer.send(
            deployment.input_topic, key=key.encode() if key else None, value=line.encode()
        )
        ahead = started + number * per_line - time.monotonic()
        if ahead > 0.005:
            time.sleep(ahead)
    producer.flush()
    producer.close()


def kill_and_restart(
    deployment: Deployment,
    workers: list[WorkerProcess],
    run: Run,
    rng: random.Random,
    settings: dict[str, str],
) -> None:
    between = run.seconds / (run.kills + 1)
    for kill in range(1, run.kills + 1):
        time.sleep(rng.uniform(0.5, 1.5) * between)
        index = rng.randrange(len(workers))
        victim = workers[index]
        victim.kill()
        wiped = rng.random() < 0.3
        if wiped:
            shutil.rmtree(victim.root / "data", ignore_errors=True)
        pause = rng.uniform(8, 15) if rng.random() < 0.25 else rng.uniform(0.5, 3)
        run.say(f"kill {kill}: {victim.name}, data dir {'wiped' if wiped else 'kept'}, "
                f"back after {pause:.1f} s")  # fmt: skip
        time.sleep(pause)
        workers[index] = deployment.worker(victim.name, **settings).start()


def drain(
    deployment: Deployment, workers: list[WorkerProcess], run: Run, timeout: float = 300.0
) -> None:
    """Until the group has committed every record of the input and repartition topics
    (every committed one: read committed, the offsets of aborted records and of
    transaction markers are never a consumer's to commit)."""
    topics = [deployment.input_topic, f"{deployment.app_id}-lead-events-by-lead"]
    tps = [TopicPartition(topic, p) for topic in topics for p in range(run.partitions)]
    admin = KafkaAdminClient(bootstrap_servers=deployment.kafka.bootstrap_servers)
    deadline = time.monotonic() + timeout
    try:
        while True:
            ends = visible_ends(deployment, tps)
            committed = admin.list_group_offsets({deployment.app_id: tps}).get(
                deployment.app_id, {}
            )
            behind = {
                f"{tp.topic}[{tp.partition}]": (
                    committed[tp].offset if tp in committed else None,
                    end,
                )
                for tp, end in ends.items()
                if end and (tp not in committed or committed[tp].offset < end)
            }
            if not behind:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(worker.log_tail(20) for worker in workers)
                raise TimeoutError(
                    f"not drained in {timeout:g} s: (committed, end) {behind}\n{tails}"
                )
            time.sleep(1)
    finally:
        admin.close()


def visible_ends(deployment: Deployment, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Per partition, the offset after its last record a read_committed consumer gets."""
    consumer = KafkaConsumer(
        bootstrap_servers=deployment.kafka.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    try:
        consumer.assign(tps)
        stable = consumer.end_offsets(tps)
        ends: dict[TopicPartition, int] = {}
        for tp in tps:
            # The last committed record lies within the last few batches before the end.
            consumer.seek(tp, max(0, stable[tp] - 2000))
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < stable[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError("partitions not read to their end")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                ends[tp] = batch[-1].offset + 1
        return {tp: ends.get(tp, 0) for tp in tps}
    finally:
        consumer.close()


def read_all(
    deployment: Deployment, topic: str, read_committed: bool
) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of `topic`, from the start to its end now."""
    consumer = KafkaConsumer(
        bootstrap_servers=deployment.kafka.bootstrap_servers,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        enable_auto_commit=False,
    )
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((record.key, record.value) for record in batch)
        return records
    finally:
        consumer.close()


def replayed_funnel(
    transitions: list[Transition], follow_ups: list[FollowUp], leads: int
) -> dict[str, object]:
    """The funnel of replay's `leads`, transitions and sales follow-ups, folded as the
    stream's funnel feed does."""
    funnel = Funnel()
    funnel.add_new_leads(leads)
    for follow_up in follow_ups:
        funnel.add_follow_up(follow_up.kind, follow_up.working_hours)
    leads: dict[str, LeadFunnel] = {}
    for transition in transitions:
        lead = leads.setdefault(transition.lead_id, LeadFunnel())
        funnel.add(transition, lead.hours_to_sql(transition))
    return comparable(funnel.view(datetime.now(UTC)).model_dump(mode="json"))


def comparable(view: dict[str, Any]) -> dict[str, object]:
    return {k: v for k, v in view.items() if k != "as_of"}


def settled_funnel(
    workers: list[WorkerProcess],
    replay: Replay,
    expected: list[Transition],
    follow_ups: list[FollowUp],
    run: Run,
    timeout: float = 60.0,
) -> str | None:
    """None once a worker's GET /funnel shows replay's funnel, else what differs."""
    want = replayed_funnel(expected, follow_ups, len(replay.states))
    seen: dict[str, object] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{workers[0].port}/funnel"
            with urllib.request.urlopen(url, timeout=5) as answer:
                seen = comparable(json.loads(answer.read()))
        except OSError:
            pass
        if seen == want:
            run.say("the funnel equals replay's")
            return None
        time.sleep(1)
    differs = {k: (seen.get(k), v) for k, v in want.items() if seen.get(k) != v}
    return f"wrong funnel (stream, replay): {differs}"


def verify(
    deployment: Deployment,
    replay: Replay,
    transitions: list[Transition],
    merges: list[LeadMerge],
    messages: int,
    run: Run,
) -> Verdict:
    """Every transition and each lead's last snapshot against replay's.

    With stitching (rules without limits: `unlimited_rules`), the leads in a merge
    (replay's or the stream's) are compared by their final scores, each rule's points
    included: no history lost or counted twice, whatever the order. Their stage (an
    exit margin remembers the path) and the ids they absorbed (a cookie read after
    its user's claim joins the user instead of merging into it) can differ: counted
    and said, not failures. No absorbed lead may be left (a last snapshot on
    lead-scores that replay has not)."""
    rules = replay.rules
    eos = run.guarantee == "exactly_once"
    examples: list[str] = []
    made: list[LeadMerge] = []
    duplicates = 0
    if run.stitch:
        made, duplicates = compare_merges(deployment, merges, eos, run)
    # Leads in a merge, replay's or the stream's: compared by their final scores.
    merged = {lead for m in [*merges, *made] for lead in (m.merged_id, m.survivor_id)}
    expected = {t.transition_id: t for t in transitions if t.lead_id not in merged}
    want_snapshots = {
        lead.encode(): json.loads(snapshot(state, rules).model_dump_json())
        for lead, state in replay.states.items()
    }
    records = read_all(deployment, deployment.transitions_topic, read_committed=eos)
    got = [
        t
        for _, value in records
        if value and (t := Transition.model_validate_json(value)).lead_id not in merged
    ]
    copies = Counter(t.transition_id for t in got)
    lost = [tid for tid in expected if tid not in copies]
    unexpected = [t for t in got if t.transition_id not in expected]
    wrong = {
        t.transition_id
        for t in got
        if t.transition_id in expected and t != expected[t.transition_id]
    }
    duplicates += sum(n - 1 for tid, n in copies.items() if tid in expected)
    for tid in lost[:5]:
        t = expected[tid]
        examples.append(f"lost: {t.lead_id} {t.from_stage}>{t.to_stage} on {t.message_id}")
    for t in unexpected[:5]:
        examples.append(f"unexpected: {t.lead_id} {t.from_stage}>{t.to_stage} on {t.message_id} "
                        f"engagement {t.engagement_score}")  # fmt: skip
    for tid in sorted(wrong)[:5]:
        want = expected[tid].model_dump(mode="json")
        seen = next(t for t in got if t.transition_id == tid).model_dump(mode="json")
        fields = {k: (seen.get(k), want[k]) for k in want if seen.get(k) != want[k]}
        examples.append(f"wrong payload: {expected[tid].lead_id} (stream, replay) {fields}")

    scores = read_all(deployment, deployment.scores_topic, read_committed=eos)
    latest: dict[bytes, Any] = {}
    for key, value in scores:
        if key is not None:
            latest[key] = json.loads(value) if value else None
    same = _same_scores if run.stitch else _same
    stale = [lead for lead, want in want_snapshots.items() if not same(latest.get(lead), want)]
    # A lead the stream still shows that replay has not (an absorbed cookie left behind).
    stale += [lead for lead, seen in latest.items() if seen and lead not in want_snapshots]
    if run.stitch:  # the stage and the ids absorbed depend on the order (see `verify`)
        ordered = [lead for lead, want in want_snapshots.items() if latest.get(lead) != want]
        run.say(f"{len(ordered) - len(stale)} leads end with replay's scores and another "
                "stage or other ids absorbed (the order of a merge and the messages around "
                "it)")  # fmt: skip
    for lead in stale[:5]:
        seen = latest.get(lead) or {}
        want = want_snapshots.get(lead) or {}
        fields = dict(_differences(seen, want))
        examples.append(f"wrong snapshot: {lead.decode()} (stream, replay) {fields}")
    bad = [expected[tid].lead_id for tid in lost[:2]] + [lead.decode() for lead in stale[:2]]
    for lead in dict.fromkeys(bad):
        examples.extend(history(deployment, lead, run))
        state = replay.states.get(lead)
        if run.stitch and state is not None and state.identity and state.identity.absorbed:
            examples.extend(stitch_trace(deployment, [lead, *state.identity.absorbed], run))
    run.say(f"{messages:,} messages, {len(expected):,} transitions expected, {len(got):,} read, "
            f"{len(want_snapshots):,} leads")  # fmt: skip
    if run.stitch:
        run.say(f"{len(merges):,} merges expected; {len(merged):,} leads in them, compared "
                "by their final snapshots")  # fmt: skip
    return Verdict(len(lost), len(unexpected), duplicates, len(wrong) + len(stale), examples)


def _same(seen: Any, want: Any) -> bool:
    return bool(seen == want)


def _same_scores(seen: Any, want: Any) -> bool:
    """The same scores, each rule's points included (stage and ids absorbed aside)."""
    if seen is None or want is None:
        return seen is want

    def points(snapshot: Any) -> dict[str, float]:
        explanation = snapshot["explanation"]
        return {c["rule_id"]: c["points"] for c in explanation["engagement"] + explanation["fit"]}

    mine, theirs = points(seen), points(want)
    return (
        math.isclose(seen["engagement_score"], want["engagement_score"], abs_tol=0.002)
        and seen["fit_score"] == want["fit_score"]
        and mine.keys() == theirs.keys()
        and all(math.isclose(mine[r], theirs[r], abs_tol=0.002) for r in mine)
    )


def _differences(seen: object, want: object, path: str = "") -> list[tuple[str, object]]:
    """Where two JSON values differ: (path, (stream's, replay's)) at the deepest level."""
    if isinstance(seen, dict) and isinstance(want, dict):
        return [
            found
            for k in {**seen, **want}
            if seen.get(k) != want.get(k)
            for found in _differences(seen.get(k), want.get(k), f"{path}.{k}" if path else k)
        ]
    if isinstance(seen, list) and isinstance(want, list) and len(seen) == len(want):
        return [
            found
            for i, (a, b) in enumerate(zip(seen, want, strict=True))
            if a != b
            for found in _differences(a, b, f"{path}[{i}]")
        ]
    return [(path, (seen, want))]


def compare_merges(
    deployment: Deployment, merges: list[LeadMerge], read_committed: bool, run: Run
) -> tuple[list[LeadMerge], int]:
    """The merges on the lead-merges topic, and how many came twice; says how many of
    replay's were not made and how many others were (each an order a partition can
    take: a cookie whose history is read after its user's claim joins the user, its
    messages forwarded one by one; one read before is merged)."""
    want = {m.merge_id: m for m in merges}
    records = read_all(deployment, deployment.merges_topic, read_committed=read_committed)
    got = [LeadMerge.model_validate_json(value) for _, value in records if value]
    copies = Counter(m.merge_id for m in got)
    others = {m.merge_id for m in got if want.get(m.merge_id) != m}
    run.say(f"merges: {len(copies)} made, {sum(mid not in copies for mid in want)} of "
            f"replay's not made, {len(others)} others")  # fmt: skip
    return got, sum(n - 1 for n in copies.values())


def history(deployment: Deployment, lead: str, run: Run) -> list[str]:
    """A lead's record in the leads changelog, one line per version: offset, the positions
    it holds, its clock and engagement; and the input offsets of its messages."""
    key = lead.encode()
    partition = partition_for(key, run.partitions)
    changelog = f"{deployment.app_id}-leads-changelog"
    lines = [f"history of {lead} (partition {partition}):"]
    for offset, value in read_partition(deployment, changelog, partition, key):
        if value is None:
            lines.append(f"  changelog @{offset}: deleted")
            continue
        state = decode_state(value)
        engagement = round(sum(state.engagement.values()), 3)
        lines.append(f"  changelog @{offset}: applied {state.applied} clock {state.clock} "
                     f"engagement {engagement}")  # fmt: skip
    sources: dict[int, list[int]] = {}
    for p in range(run.partitions):
        for offset, value in read_partition(deployment, deployment.input_topic, p, None):
            if value is not None and lead_of(value) == lead:
                sources.setdefault(p, []).append(offset)
    for p, offsets in sources.items():
        lines.append(f"  input partition {p}: {len(offsets)} messages at {offsets}")
    return lines


def stitch_trace(deployment: Deployment, ids: list[str], run: Run) -> list[str]:
    """Every record about a lead and the ids it absorbed in replay, in time order: their
    input messages, their records on the repartition topic (control records, forwards),
    and their versions in the leads and identities changelogs."""
    wanted = {i.encode() for i in ids}
    wanted |= {b"anon:" + i.encode() for i in ids} | {b"lead:" + i.encode() for i in ids}
    topics = [
        deployment.input_topic,
        f"{deployment.app_id}-lead-events-by-lead",
        f"{deployment.app_id}-leads-changelog",
        f"{deployment.app_id}-identities-changelog",
    ]
    found: list[tuple[int, str]] = []
    consumer = KafkaConsumer(
        bootstrap_servers=deployment.kafka.bootstrap_servers, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(run.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for r in batch:
                    about = r.key in wanted or (
                        r.value is not None and lead_of(r.value) in ids and tp.topic == topics[0]
                    )
                    headers = dict(r.headers or [])
                    named = headers.get("leadscore-lead", b"").decode()
                    if not about and named not in ids:
                        continue
                    what = _traced(tp.topic, r.key, r.value, headers)
                    found.append((r.timestamp, f"{tp.topic}[{tp.partition}]@{r.offset} {what}"))
    finally:
        consumer.close()
    start = min((t for t, _ in found), default=0)
    return [f"trace of {ids}:"] + [f"  +{t - start:>7} ms {line}" for t, line in sorted(found)]


def _traced(topic: str, key: bytes | None, value: bytes | None, headers: dict[str, bytes]) -> str:
    name = (key or b"").decode()
    if value is None:
        return f"{name}: tombstone"
    if topic.endswith("-leads-changelog"):
        state = decode_state(value)
        engagement = round(sum(state.engagement.values()), 3)
        absorbed = state.identity.absorbed if state.identity else ()
        return f"{name}: engagement {engagement} absorbed {list(absorbed)} applied {state.applied}"
    if topic.endswith("-identities-changelog"):
        return f"{name} -> {value.decode()}"
    kind = headers.get("leadscore-control", b"").decode()
    origin = headers.get("leadscore-origin", b"").decode()
    body = json.loads(value)
    if kind:
        brief = {k: v for k, v in body.items() if k not in ("absorbed", "claimant")}
        return f"{kind} key {name} {brief}"
    return f"message {body.get('type')} {body.get('messageId')} key {name} origin {origin}"


def read_partition(
    deployment: Deployment, topic: str, partition: int, key: bytes | None
) -> list[tuple[int, bytes | None]]:
    """(offset, value) of each record of one partition (with `key`, if given)."""
    consumer = KafkaConsumer(
        bootstrap_servers=deployment.kafka.bootstrap_servers, enable_auto_commit=False
    )
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        found: list[tuple[int, bytes | None]] = []
        while consumer.position(tp) < end:
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend((r.offset, r.value) for r in batch if key is None or r.key == key)
        return found
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--leads", type=int, default=3_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument(
        "--guarantee", choices=["at_least_once", "exactly_once"], default="at_least_once"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stitch", action="store_true", help="with LEADSCORE_STITCH=true")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="producer's duration (default: 1 s per 1,000 messages)",
    )
    args = parser.parse_args(argv)
    run = Run(messages=args.messages, leads=args.leads, workers=args.workers, kills=args.kills,
              guarantee=args.guarantee, partitions=args.partitions, seed=args.seed,
              stitch=args.stitch,
              seconds=args.seconds or args.messages / 1_000)  # fmt: skip
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="leadscore-chaos-"))
    print(f"workers' logs and data in {root} (removed if the run is exact)")
    with KafkaServer() as kafka:
        verdict = chaos(kafka, root, run)
    if verdict.exact(run.guarantee):
        shutil.rmtree(root)
    for example in verdict.examples:
        print(example)
    took = time.monotonic() - started
    stitching = ", stitching" if run.stitch else ""
    print(f"{args.guarantee}{stitching}, {run.workers} workers, {run.kills} kills, {took:.0f} s")
    print(verdict.line)
    return 0 if verdict.exact(run.guarantee) else 1


if __name__ == "__main__":
    sys.exit(main())
