"""`leadscore dev`, `send` and `tail`, as a newcomer would use them."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.harness import LEADSCORE, REPO, an_mql, free_port


def events() -> list[str]:
    """A lead that becomes an MQL, and one bad line."""
    bad = {"type": "track", "userId": "dev-lead-1", "messageId": "d3", "event": "Oops"}
    return [*an_mql("dev-lead-1", ("d1", "d2")), json.dumps(bad)]


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@contextmanager
def leadscore_dev(
    tmp_path: Path, broker_port: int, web_port: int, *flags: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`leadscore dev` running, its output in tmp_path/dev.log; killed if still up."""
    with (tmp_path / "dev.log").open("wb") as log:
        dev = subprocess.Popen(
            [*LEADSCORE, "dev", *flags, "--broker-port", str(broker_port),
             "--web-port", str(web_port)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield dev
        finally:
            if dev.poll() is None:
                dev.kill()
                dev.wait()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_comes_up_from_nothing_scores_what_send_sends_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    broker_port, web_port = free_port(), free_port()
    broker = ["--broker", f"kafka://127.0.0.1:{broker_port}"]
    with leadscore_dev(tmp_path, broker_port, web_port) as dev:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and dev.poll() is None:
            health = status(f"http://127.0.0.1:{web_port}/health")
            if health == 200:
                break
            time.sleep(0.3)
        assert health == 200, (tmp_path / "dev.log").read_text()

        events_file = tmp_path / "events.jsonl"
        events_file.write_text("\n".join(events()) + "\n")
        sent = subprocess.run(
            [*LEADSCORE, "send", str(events_file), *broker],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert "line 3: timestamp is required" in sent.stderr
        assert "sent 2 messages to lead-events; 1 lines rejected" in sent.stderr

        tailed = subprocess.run(
            [*LEADSCORE, "tail", "--from-beginning", "--max", "1", "--idle-timeout", "30",
             *broker],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert tailed.returncode == 0, tailed.stderr
        assert "dev-lead-1" in tailed.stdout
        assert "lead → mql" in tailed.stdout

        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=30) == 0
    output = (tmp_path / "dev.log").read_text()
    assert "dev-lead-1" in output  # the terminal showed the transition
    assert not port_open(broker_port), "the embedded broker is still running"
    assert not port_open(web_port)


def test_send_fails_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(events()) + "\n")
    run = subprocess.run(
        [*LEADSCORE, "send", str(events_file), "--broker", f"kafka://127.0.0.1:{free_port()}"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "cannot reach Kafka" in run.stderr


def test_the_demo_scores_live_sdk_shaped_traffic_with_an_mql_within_a_minute(
    tmp_path: Path,
) -> None:
    """`leadscore dev --demo`, the README's first command: live SDK-shaped traffic that
    the worker scores (an MQL within a minute), with nothing dead-lettered."""
    broker_port, web_port = free_port(), free_port()
    with leadscore_dev(tmp_path, broker_port, web_port, "--demo", "--rate", "20") as dev:
        deadline = time.monotonic() + 120
        stages: set[str] = set()
        while time.monotonic() < deadline and dev.poll() is None and "mql" not in stages:
            time.sleep(1)
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{web_port}/transitions/recent?limit=100", timeout=2
                ) as answer:
                    recent = json.loads(answer.read())["transitions"]
            except (OSError, ValueError):
                continue
            stages |= {t["to_stage"] for t in recent}
        assert "mql" in stages, (tmp_path / "dev.log").read_text()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        rejected = [
            line
            for line in metrics.splitlines()
            if line.startswith("leadscore_messages_total") and "rejected" in line
        ]
        assert all(line.endswith(" 0") or line.endswith(" 0.0") for line in rejected), rejected
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=30) == 0
