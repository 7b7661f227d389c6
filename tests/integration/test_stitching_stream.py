"""Identity stitching in the stream, on Apache Kafka: the anonymous visitor who signs up
through a popup is the same lead afterwards, with the anonymous id and the user id on
different partitions, as replay stitches it; and a SIGKILL during the merges loses no
history and counts none twice (see streams/processing/stitching.py)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, expect

from scoring import load_rules, snapshot
from scoring.outputs import LeadMerge, ScoreSnapshot, Transition
from scoring.replay import Replay
from streams.kafka.topics import partition_for
from tests.integration.browser import look_up, watch
from tests.integration.harness import REPO, Deployment, WorkerProcess
from tests.integration.kafka_server import KafkaServer

JOURNEYS = REPO / "tests" / "fixtures" / "payloads" / "journeys"
JOURNEY = JOURNEYS / "popup_signup.jsonl"
VISITOR, USER = "29be5d21-2981-4b38-94c2-771116e58928", "usr_01JB7ZK3Q8"
PARTITIONS = 4


def stitching(kafka: KafkaServer, tmp_path: Path, guarantee: str = "at_least_once") -> Deployment:
    return Deployment(kafka, tmp_path, partitions=PARTITIONS, guarantee=guarantee)


def worker_of(deployment: Deployment) -> WorkerProcess:
    return deployment.worker(LEADSCORE_STITCH="true", LEADSCORE_COMMIT_INTERVAL="1")


def handled(worker: WorkerProcess, outcome: str) -> int:
    """How many records the worker handled with `outcome` (its /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics") as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(f'leadscore_messages_total{{outcome="{outcome}"}}'):
                return int(float(line.split()[-1]))
    return 0


def wait_for(worker: WorkerProcess, outcome: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while handled(worker, outcome) < count:
        assert time.monotonic() < deadline, f"{outcome} < {count}:\n{worker.log_tail()}"
        time.sleep(0.2)


def latest_scores(
    deployment: Deployment, until: int, read_committed: bool = False
) -> dict[str, ScoreSnapshot | None]:
    """The last value of each lead on lead-scores (None: a tombstone)."""
    latest: dict[str, ScoreSnapshot | None] = {}
    records = deployment.consume(
        deployment.scores_topic, until=until, timeout=8, read_committed=read_committed
    )
    for key, value in records:
        assert key is not None
        latest[key.decode()] = None if value is None else ScoreSnapshot.model_validate_json(value)
    return latest


def test_a_popup_signup_is_one_lead_in_the_stream_as_in_replay(
    kafka: KafkaServer, tmp_path: Path, browser: Browser
) -> None:
    assert partition_for(VISITOR.encode(), PARTITIONS) != partition_for(USER.encode(), PARTITIONS)
    lines = recent(JOURNEY.read_text().splitlines())
    # The identify links the two; the alias comes once the merge is done (a message of
    # the user read before the hand-over arrives would give the merge its time).
    anonymous, linking, after = lines[:4], lines[4:5], lines[5:]
    # A page the visitor's cookie sends on its own after the login: it reaches the user.
    later = json.loads(lines[6])
    del later["userId"]
    later |= {"messageId": "after-login-page", "timestamp": _iso(time.time() - 1800)}
    for name in ("originalTimestamp", "sentAt", "receivedAt"):
        later.pop(name)
    after.append(json.dumps(later))
    replay = Replay(load_rules())
    expected = list(replay.feed(lines[:6] + after))
    merged_user = replay.states[USER]
    assert list(replay.states) == [USER]
    deployment = stitching(kafka, tmp_path)
    with worker_of(deployment) as worker:
        worker.wait_ready()
        deployment.produce(anonymous)
        wait_for(worker, "applied", 4)  # the cookie's history is scored on its partition
        deployment.produce(linking)
        merges = deployment.consume(deployment.merges_topic, until=1, timeout=60)
        deployment.produce(after)
        wait_for(worker, "forwarded", 1)  # read on the cookie's partition, sent on
        wait_for(worker, "applied", 4 + 1 + 3)
        transitions = deployment.transitions(until=1)
        scores = latest_scores(deployment, until=100)
        # The API and the dashboard's lookup answer for the cookie id with the user.
        home = f"http://127.0.0.1:{worker.port}"
        with urllib.request.urlopen(f"{home}/leads/{VISITOR}") as answer:
            assert answer.url == f"{home}/leads/{USER}"  # redirected
            view = json.loads(answer.read())
        assert (view["lead_id"], view["absorbed_ids"], view["stage"]) == (USER, [VISITOR], "mql")
        page = browser.new_page()
        problems = watch(page)
        page.goto(f"{home}/")
        look_up(page, VISITOR)
        result = page.locator("#lookup-result")
        expect(result.locator("h3")).to_have_text(USER, timeout=30_000)
        expect(result.locator(".merged-ids")).to_have_text(
            f"{VISITOR} is merged into this lead · one person: also the id {VISITOR}"
        )
        assert problems == []
        page.close()
        # The user asks to be forgotten: the cookie is let go, and its next page is the
        # cookie's own lead again, as in replay.
        forget = {"type": "delete", "messageId": "forget-usr", "userId": USER,
                  "timestamp": _iso(time.time() - 600)}  # fmt: skip
        again = json.loads(after[-1]) | {"messageId": "page-after-forget",
                                        "timestamp": _iso(time.time() - 300)}  # fmt: skip
        deployment.produce([json.dumps(forget)])
        deployment.consume(deployment.deletions_topic, until=1, timeout=60)
        wait_for(worker, "released", 2)  # the cookie and the email
        deployment.produce([json.dumps(again)])
        wait_for(worker, "applied", 4 + 1 + 3 + 1)
        time.sleep(2)  # a commit: the snapshots out
        forgotten = latest_scores(deployment, until=100)
        # The email is let go of too: nobody's now, anyone's to claim.
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(f"{home}/leads/dana.whitfield@northwind-analytics.example")
        assert (gone.value.code, json.loads(gone.value.read())["error"]) == (
            404, "no lead has this email",
        )  # fmt: skip
    list(replay.feed([json.dumps(forget), json.dumps(again)]))
    assert list(replay.states) == [VISITOR]
    assert forgotten[USER] is None
    assert forgotten[VISITOR] == snapshot(replay.states[VISITOR], load_rules())

    assert [LeadMerge.model_validate_json(value) for _, value in merges] == [
        o for o in expected if isinstance(o, LeadMerge)
    ], worker.log_tail()
    assert transitions == [o for o in expected if isinstance(o, Transition)]
    assert transitions[0].lead_id == USER and transitions[0].to_stage == "mql"
    # One lead: the cookie's is gone (a tombstone), the user's holds the whole history.
    assert scores[VISITOR] is None
    assert scores[USER] == snapshot(merged_user, load_rules())


def test_an_email_only_popup_and_a_login_elsewhere_are_one_lead_as_in_replay(
    kafka: KafkaServer, tmp_path: Path
) -> None:
    """The popup's identify carries the cookie and an email; days later the person logs
    in on another device (a second cookie), the identify giving the same email: three
    leads on three partitions become one, by the anonymous id and by the email (whose
    holder, the first cookie's lead, is found through the email's partition)."""
    lines = recent((JOURNEYS / "popup_email_only.jsonl").read_text().splitlines())
    user, first_cookie, second_cookie = (
        "usr_01JBQ4M2XW", "5d55b696-65f0-40a7-8d02-39753a0a94c0",
        "0a275bec-ccb9-4244-9b91-2ac52a7c31ca",
    )  # fmt: skip
    replay = Replay(load_rules())
    expected = list(replay.feed(lines))
    deployment = stitching(kafka, tmp_path)
    with worker_of(deployment) as worker:
        worker.wait_ready()
        deployment.produce(lines[:6])  # the first cookie's history and popup; the login page
        wait_for(worker, "applied", 6)
        deployment.produce(lines[6:7])  # the login's identify: two links
        merges = deployment.consume(deployment.merges_topic, until=2, timeout=60)
        deployment.produce(lines[7:])
        wait_for(worker, "applied", 8)
        transitions = deployment.transitions(until=1)
        scores = latest_scores(deployment, until=100)
        # The API finds the lead by its email, written as the person typed it, too.
        home = f"http://127.0.0.1:{worker.port}"
        typed = quote(" M.Okafor@BrightLane.example")
        with urllib.request.urlopen(f"{home}/leads/{typed}") as answer:
            assert answer.url == f"{home}/leads/{user}"  # via /identities/email/...
            assert json.loads(answer.read())["lead_id"] == user
        with pytest.raises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(f"{home}/leads/nobody@brightlane.example")
        assert unknown.value.code == 404
        assert json.loads(unknown.value.read())["error"] == "no lead has this email"

    assert {LeadMerge.model_validate_json(value) for _, value in merges} == {
        o for o in expected if isinstance(o, LeadMerge)
    }, worker.log_tail()
    # One MQL, the user's (which of the two merges gives it depends on which hand-over
    # comes first; replay's came in link order).
    assert [(t.lead_id, t.to_stage) for t in transitions] == [(user, "mql")]
    assert list(replay.states) == [user]
    assert scores[first_cookie] is None and scores[second_cookie] is None
    assert scores[user] == snapshot(replay.states[user], load_rules())


TIMES = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")


def recent(lines: list[str]) -> list[str]:
    """The journey's messages with every time moved so that the last was an hour ago
    (the worker's decay checks run on the wall clock, replay's on the messages)."""
    messages = [json.loads(line) for line in lines]
    last = max(datetime.fromisoformat(m["timestamp"]).timestamp() for m in messages)
    shift = time.time() - 3600 - last
    for message in messages:
        for name in TIMES:
            if name in message:
                message[name] = _iso(datetime.fromisoformat(message[name]).timestamp() + shift)
    return [json.dumps(message) for message in messages]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def journeys(count: int, tag: str) -> tuple[list[str], list[str], list[str]]:
    """`count` visitors who browse anonymously and sign up (phase one), are identified
    (two), and whose cookies send one more page on their own (three)."""
    start = time.time() - 3600
    phases: tuple[list[str], list[str], list[str]] = ([], [], [])

    def message(phase: int, visitor: str, seconds: float, **fields: object) -> None:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start + seconds))
        mid = f"{visitor}-{phase}-{len(phases[phase])}"
        phases[phase].append(json.dumps({"messageId": mid, "timestamp": moment} | fields))

    for n in range(count):
        visitor, user = f"anon-{tag}-{n}", f"user-{tag}-{n}"
        for i, path in enumerate(["/pricing", "/demo", "/pricing"]):
            message(0, visitor, n + i, type="page", anonymousId=visitor, name=path,
                    properties={"path": path, "url": f"https://www.example.com{path}"})  # fmt: skip
        message(0, visitor, n + 3, type="track", anonymousId=visitor, event="Signed Up")
        message(1, visitor, n + 600, type="identify", anonymousId=visitor, userId=user,
                traits={"email": f"{user}@bigco.example", "title": "VP Sales",
                        "company": {"employees": 400}})  # fmt: skip
        message(2, visitor, n + 1200, type="page", anonymousId=visitor, name="/pricing",
                properties={"path": "/pricing"})  # fmt: skip
    return phases


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_sigkill_during_merges_loses_nothing_and_counts_nothing_twice(
    kafka: KafkaServer, tmp_path: Path, guarantee: str
) -> None:
    count = 40
    tag = uuid.uuid4().hex[:6]
    first, second, third = journeys(count, tag)
    replay = Replay(load_rules())
    expected = [o for phase in (first, second, third) for o in replay.feed(phase)]
    deployment = stitching(kafka, tmp_path, guarantee)
    read_committed = guarantee == "exactly_once"
    with worker_of(deployment) as worker:
        worker.wait_ready()
        deployment.produce(first)
        wait_for(worker, "applied", len(first))
        # Committed: a history read again after the kill could be read after the claims.
        deployment.wait_committed(len(first))
        # The identifies come one by one, and the worker is killed as soon as the first
        # merge is out: others are decided, handed over or merged but not committed, or
        # not begun.
        paced = threading.Thread(target=lambda: [deployment.produce([line]) for line in second])
        paced.start()
        deployment.consume(deployment.merges_topic, until=1, timeout=60)
        worker.kill()
        paced.join()
    expected_merges = {o.merge_id: o for o in expected if isinstance(o, LeadMerge)}
    expected_transitions = {o.transition_id: o for o in expected if isinstance(o, Transition)}
    with worker_of(deployment) as worker:
        worker.wait_ready()
        merges = distinct(deployment, deployment.merges_topic, count, read_committed)
        assert len(merges) == count, worker.log_tail()
        assert handled(worker, "merged") + handled(worker, "handed_over") > 0  # after the kill
        deployment.produce(third)
        wait_for(worker, "forwarded", count)
        time.sleep(3)  # a commit: the states and their snapshots out
        transitions = distinct(
            deployment, deployment.transitions_topic, len(expected_transitions), read_committed
        )
        scores = latest_scores(deployment, until=100 * count, read_committed=read_committed)

    assert {m.merge_id: m for m in map(LeadMerge.model_validate_json, merges)} == expected_merges
    stream = {t.transition_id: t for t in map(Transition.model_validate_json, transitions)}
    assert stream == expected_transitions
    rules = load_rules()
    assert set(replay.states) == {f"user-{tag}-{n}" for n in range(count)}
    for n in range(count):
        assert scores[f"anon-{tag}-{n}"] is None  # merged: gone
        user = f"user-{tag}-{n}"
        assert scores[user] == snapshot(replay.states[user], rules), user


def distinct(deployment: Deployment, topic: str, count: int, read_committed: bool) -> set[bytes]:
    """At least `count` distinct values of `topic` (at least once: some come twice), or
    what there is after a minute."""
    deadline = time.monotonic() + 60
    values: set[bytes] = set()
    while len(values) < count and time.monotonic() < deadline:
        records = deployment.consume(
            topic, until=len(values) + count, timeout=5, read_committed=read_committed
        )
        values = {value for _, value in records}
    return values


def test_the_first_claim_of_a_cookie_wins_and_two_user_ids_never_merge(
    kafka: KafkaServer, tmp_path: Path
) -> None:
    """A shared computer: two people log in with one cookie. The cookie's history goes to
    the first; the second login is an identity conflict, scored without merging and
    counted; an alias between the two user ids is refused too. Replay agrees."""
    tag = uuid.uuid4().hex[:6]
    cookie, first, second = f"shared-{tag}", f"ann-{tag}", f"bob-{tag}"
    start = time.time() - 3600

    def message(n: int, **fields: object) -> str:
        return json.dumps({"messageId": f"{tag}-{n}", "timestamp": _iso(start + n)} | fields)

    history = [
        message(0, type="page", anonymousId=cookie, properties={"path": "/pricing"}),
        message(1, type="page", anonymousId=cookie, properties={"path": "/demo"}),
    ]
    logins = [
        message(2, type="identify", anonymousId=cookie, userId=first, traits={"title": "CTO"}),
    ]
    later = [
        message(3, type="identify", anonymousId=cookie, userId=second, traits={"title": "CFO"}),
        message(4, type="alias", previousId=first, userId=second),
    ]
    replay = Replay(load_rules())
    expected = [o for lines in (history, logins, later) for o in replay.feed(lines)]
    assert replay.identities.conflicts == {"claimed": 1, "two_user_ids": 1}
    deployment = stitching(kafka, tmp_path)
    with worker_of(deployment) as worker:
        worker.wait_ready()
        deployment.produce(history)
        wait_for(worker, "applied", 2)
        deployment.produce(logins)
        merges = deployment.consume(deployment.merges_topic, until=1, timeout=60)
        deployment.produce(later)
        wait_for(worker, "conflict", 2)
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics") as answer:
            metrics = answer.read().decode()
        time.sleep(2)  # a commit: the snapshots out
        scores = latest_scores(deployment, until=100)

    assert [LeadMerge.model_validate_json(value) for _, value in merges] == [
        o for o in expected if isinstance(o, LeadMerge)
    ]
    assert 'leadscore_identity_conflicts_total{kind="claimed"} 1.0' in metrics
    assert 'leadscore_identity_conflicts_total{kind="two_user_ids"} 1.0' in metrics
    assert set(replay.states) == {first, second}
    assert scores[cookie] is None
    rules = load_rules()
    for user in (first, second):
        assert scores[user] == snapshot(replay.states[user], rules), user


def test_a_refused_claim_takes_its_join_back_under_the_cap_of_anonymous_ids(
    kafka: KafkaServer, tmp_path: Path
) -> None:
    """A lead counts the join of each cookie it claims at once (the cap: five in 30 days),
    and takes it back when the claim is refused: after four cookies and one that another
    user holds, a fifth cookie still joins (its anonymous history merged), and a sixth is
    refused by the cap. Replay agrees."""
    tag = uuid.uuid4().hex[:6]
    ada, bob = f"ada-{tag}", f"bob-{tag}"
    shared, cookies = f"shared-{tag}", [f"device-{i}-{tag}" for i in range(6)]
    start = time.time() - 3600

    def message(n: int, **fields: object) -> str:
        return json.dumps({"messageId": f"{tag}-{n}", "timestamp": _iso(start + n)} | fields)

    def visit(n: int, cookie: str, **ids: object) -> str:
        return message(n, type="page", anonymousId=cookie, properties={"path": "/pricing"}, **ids)

    bobs = [visit(0, shared, userId=bob)]  # bob holds the shared cookie
    first = [
        *(visit(1 + i, cookie, userId=ada) for i, cookie in enumerate(cookies[:4])),
        visit(5, shared, userId=ada),  # refused: bob's; its join taken back
        message(6, type="track", anonymousId=cookies[4], event="Demo Requested"),
        message(7, type="track", anonymousId=cookies[5], event="Demo Requested"),
    ]
    fifth, sixth = [visit(8, cookies[4], userId=ada)], [visit(9, cookies[5], userId=ada)]
    replay = Replay(load_rules())
    expected = [o for lines in (bobs, first, fifth, sixth) for o in replay.feed(lines)]
    assert replay.identities.conflicts == {"claimed": 1, "anonymous_cap": 1}
    assert [(o.merged_id, o.survivor_id) for o in expected if isinstance(o, LeadMerge)] == [
        (cookies[4], ada)
    ]
    deployment = stitching(kafka, tmp_path)
    with worker_of(deployment) as worker:
        worker.wait_ready()
        # Bob's claim first: the first claim to reach the cookie's partition wins, and
        # bob's and ada's messages are on partitions read side by side.
        deployment.produce(bobs)
        wait_for(worker, "claimed", 1)
        deployment.produce(first)
        wait_for(worker, "applied", 1 + len(first))  # the cookies' histories there to merge
        wait_for(worker, "unjoined", 1)
        deployment.produce(fifth)
        merges = deployment.consume(deployment.merges_topic, until=1, timeout=60)
        deployment.produce(sixth)
        wait_for(worker, "applied", 1 + len(first) + 2)
        time.sleep(2)  # a commit: the snapshots out
        scores = latest_scores(deployment, until=100)
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics") as answer:
            metrics = answer.read().decode()

    assert [LeadMerge.model_validate_json(value) for _, value in merges] == [
        o for o in expected if isinstance(o, LeadMerge)
    ], worker.log_tail()
    assert 'leadscore_identity_conflicts_total{kind="claimed"} 1.0' in metrics
    assert 'leadscore_identity_conflicts_total{kind="anonymous_cap"} 1.0' in metrics
    rules = load_rules()
    assert scores[cookies[4]] is None
    for lead in (ada, bob, cookies[5]):
        assert scores[lead] == snapshot(replay.states[lead], rules), lead
