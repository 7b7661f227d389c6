"""Running leadscore workers against the session's Kafka, and talking to its topics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from scoring import Transition
from tests.integration.kafka_server import KafkaServer

LEADSCORE = [sys.executable, "-m", "streams.cli.main"]
REPO = Path(__file__).parents[2]


def an_mql(lead: str, message_ids: tuple[str, str]) -> list[str]:
    """A decision maker at a mid-sized company who requests a demo, a minute ago: one
    transition, lead -> mql, under the example rules."""
    now = time.time()

    def at(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 60 + seconds))

    identify, demo = message_ids
    return [
        json.dumps({"type": "identify", "messageId": identify, "userId": lead,
                    "timestamp": at(0), "traits": {"email": "kim@bigco.example",
                    "title": "VP Sales", "company": {"employees": 400}}}),
        json.dumps({"type": "track", "messageId": demo, "userId": lead, "timestamp": at(1),
                    "event": "Demo Requested"}),
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """One leadscore deployment under test: its own app id and topics on the shared broker."""

    kafka: KafkaServer
    root: Path
    partitions: int = 4
    rules: Path | None = None
    guarantee: str = "at_least_once"

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.app_id = f"leadscore-test-{tag}"
        self.input_topic = f"lead-events-{tag}"
        self.transitions_topic = f"lead-transitions-{tag}"
        self.alerts_topic = f"sales-alerts-{tag}"
        self.scores_topic = f"lead-scores-{tag}"
        self.dlq_topic = f"lead-events-dlq-{tag}"
        self.deletions_topic = f"lead-deletions-{tag}"
        self.merges_topic = f"lead-merges-{tag}"

    def env(self, name: str) -> dict[str, str]:
        env = {
            "LEADSCORE_BROKER": f"kafka://{self.kafka.bootstrap_servers}",
            "LEADSCORE_APP_ID": self.app_id,
            "LEADSCORE_INPUT_TOPICS": self.input_topic,
            "LEADSCORE_TRANSITIONS_TOPIC": self.transitions_topic,
            "LEADSCORE_ALERTS_TOPIC": self.alerts_topic,
            "LEADSCORE_SCORES_TOPIC": self.scores_topic,
            "LEADSCORE_DLQ_TOPIC": self.dlq_topic,
            "LEADSCORE_DELETIONS_TOPIC": self.deletions_topic,
            "LEADSCORE_MERGES_TOPIC": self.merges_topic,
            "LEADSCORE_PARTITIONS": str(self.partitions),
            "LEADSCORE_DATA_DIR": str(self.root / name / "data"),
            "LEADSCORE_PROCESSING_GUARANTEE": self.guarantee,
            "LEADSCORE_SESSION_TIMEOUT": "6",
            "LEADSCORE_HEARTBEAT_INTERVAL": "1",
            "LEADSCORE_REBALANCE_TIMEOUT": "10",
            "LEADSCORE_DECAY_CHECK_INTERVAL": "1",
        }
        if self.rules is not None:
            env["LEADSCORE_RULES"] = str(self.rules)
        return env

    def worker(self, name: str = "w1", **extra_env: str) -> WorkerProcess:
        return WorkerProcess(name, self.env(name) | extra_env, self.root / name)

    def rescore(self, name: str, rules: Path) -> WorkerProcess:
        """`leadscore rescore --rules RULES` of this deployment's input (its own group and
        topics, named by the rules version)."""
        command = ("rescore", "--rules", str(rules))
        return WorkerProcess(name, self.env(name), self.root / name, command)

    def produce(self, lines: Iterable[str | bytes], keys: Mapping[str, str] | None = None) -> int:
        """Send each line, keyed by its lead id (or by `keys[lead id]`); returns how many."""
        producer = KafkaProducer(bootstrap_servers=self.kafka.bootstrap_servers, acks="all")
        count = 0
        for line in lines:
            raw = line.encode() if isinstance(line, str) else line
            key = lead_of(raw)
            if key is not None and keys:
                key = keys.get(key, key)
            producer.send(self.input_topic, key=key.encode() if key else None, value=raw)
            count += 1
        producer.flush()
        producer.close()
        return count

    def wait_committed(self, records: int, timeout: float = 30.0) -> None:
        """Until the group's committed offsets of the input topic add up to `records`."""
        admin = KafkaAdminClient(bootstrap_servers=self.kafka.bootstrap_servers)
        try:
            deadline = time.monotonic() + timeout
            while True:
                offsets = admin.list_group_offsets([self.app_id]).get(self.app_id) or {}
                done = sum(m.offset for tp, m in offsets.items() if tp.topic == self.input_topic)
                if done >= records:
                    return
                assert time.monotonic() < deadline, f"{done} of {records} input records committed"
                time.sleep(0.2)
        finally:
            admin.close()

    def _consumer(self, topic: str, *, read_committed: bool = False) -> KafkaConsumer:
        """A consumer of `topic` from its start."""
        return KafkaConsumer(
            topic,
            bootstrap_servers=self.kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed" if read_committed else "read_uncommitted",
            consumer_timeout_ms=500,
        )

    def consume(
        self,
        topic: str,
        *,
        until: int,
        timeout: float = 60.0,
        read_committed: bool = False,
    ) -> list[tuple[bytes | None, bytes]]:
        """Records of `topic` from the start, until `until` of them or `timeout`
        (a tombstone's value is None)."""
        consumer = self._consumer(topic, read_committed=read_committed)
        records: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < until and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend((r.key, r.value) for r in batch)
        finally:
            consumer.close()
        return records

    def transitions(self, *, until: int, timeout: float = 60.0, **kw: bool) -> list[Transition]:
        records = self.consume(self.transitions_topic, until=until, timeout=timeout, **kw)
        return [Transition.model_validate_json(value) for _, value in records]

    def distinct_transitions(
        self, *, until: int, timeout: float = 60.0, topic: str | None = None, **kw: bool
    ) -> list[Transition]:
        """Every transition record (duplicates too) of the transitions topic (or `topic`)
        once `until` distinct transition ids have come, or at `timeout`: after a kill, at
        least once re-sends some, and a count of records would stop short of the last
        distinct ones."""
        consumer = self._consumer(topic or self.transitions_topic, **kw)
        got: list[Transition] = []
        ids: set[str] = set()
        deadline = time.monotonic() + timeout
        try:
            while len(ids) < until and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    for record in batch:
                        got.append(Transition.model_validate_json(record.value))
                        ids.add(got[-1].transition_id)
        finally:
            consumer.close()
        return got


def lead_of(raw: bytes) -> str | None:
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    lead = message.get("userId") or message.get("anonymousId")
    return lead if isinstance(lead, str) else None


class WorkerProcess:
    """`leadscore worker` in a child process, its output in a log file."""

    def __init__(
        self, name: str, env: Mapping[str, str], root: Path, command: tuple[str, ...] = ("worker",)
    ) -> None:
        self.name = name
        self.root = root
        self.command = command
        self.env = {**os.environ, **env, "LEADSCORE_WEB_PORT": str(free_port())}
        self.port = int(self.env["LEADSCORE_WEB_PORT"])
        self.log_path = root / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*LEADSCORE, *self.command], env=self.env, cwd=REPO, stdout=log, stderr=log
            )
        return self

    def health(self) -> tuple[int, dict[str, object]] | None:
        return self.get("/health")

    def get(self, path: str) -> tuple[int, dict[str, object]] | None:
        """The worker's JSON answer to GET `path` (status, body); None if it gave none."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = 60.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log_tail()}")
            answer = self.health()
            if answer is not None and answer[0] == 200:
                return answer[1]
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready in {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no last commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"worker {self.name} ignored SIGTERM:\n{self.log_tail()}"
                ) from None
        return self.process.returncode

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_has(self, text: str) -> bool:
        return self.log_path.exists() and text in self.log_path.read_text(errors="replace")

    def warnings(self) -> str:
        """The lines of the log that are warnings or errors."""
        if not self.log_path.exists():
            return "(no log)"
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if "[WARNING]" in line or "[ERROR]" in line)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
