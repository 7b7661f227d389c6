"""leadscore on a secured Kafka: SASL_SSL with SCRAM-SHA-512, as the README's settings say.

The session's broker has a SASL_SSL listener next to its PLAINTEXT one, with
a certificate signed by a CA of its own and one SCRAM-SHA-512 user. The
worker (Faust on aiokafka), `leadscore send` and `leadscore tail`
(kafka-python) connect to it with the LEADSCORE_ settings alone. With a wrong
password, or a CA file of another CA, each stops at once, names the setting
to fix and prints no password.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.harness import LEADSCORE, REPO, Deployment, an_mql
from tests.integration.kafka_server import KafkaServer, make_ca

# Wrong settings must stop a command well before this (kafka-python's bootstrap
# alone would wait 30 s, then name neither the password nor the CA file).
STOPS_WITHIN_S = 60.0
WRONG_PASSWORD = "not-the-password-4711"


def secured(kafka: KafkaServer, **overrides: str) -> dict[str, str]:
    """The settings of a client of the SASL_SSL listener."""
    return {
        "LEADSCORE_BROKER": f"kafka://{kafka.sasl_ssl_bootstrap_servers}",
        "LEADSCORE_SECURITY_PROTOCOL": "SASL_SSL",
        "LEADSCORE_SASL_MECHANISM": kafka.sasl_mechanism,
        "LEADSCORE_SASL_USERNAME": kafka.sasl_username,
        "LEADSCORE_SASL_PASSWORD": kafka.sasl_password,
        "LEADSCORE_SSL_CAFILE": str(kafka.ssl_cafile),
        **overrides,
    }


def leadscore(
    command: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEADSCORE, *command], env={**os.environ, **env}, cwd=REPO, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def events_file(directory: Path, lead: str) -> Path:
    events = directory / "events.jsonl"
    events.write_text("\n".join(an_mql(lead, (f"{lead}-1", f"{lead}-2"))) + "\n")
    return events


def test_worker_send_and_tail_over_sasl_ssl(kafka: KafkaServer, tmp_path: Path) -> None:
    deployment = Deployment(kafka, tmp_path)
    events = events_file(tmp_path, "secure-1")
    env = deployment.env("cli") | secured(kafka)

    with deployment.worker("w1", **secured(kafka)) as worker:
        worker.wait_ready(timeout=120)
        sent = leadscore(["send", str(events)], env, timeout=120)
        assert sent.returncode == 0, sent.stderr
        assert "sent 2 messages" in sent.stderr
        tailed = leadscore(
            ["tail", "--from-beginning", "--max", "1", "--idle-timeout", "90"], env, timeout=150
        )
        assert tailed.returncode == 0, tailed.stderr
        # The same transition, read back over PLAINTEXT.
        [transition] = deployment.transitions(until=1, timeout=60)
        assert worker.stop() == 0
        log = worker.log_path.read_text(errors="replace")

    assert (transition.lead_id, transition.from_stage, transition.to_stage) == (
        "secure-1", "lead", "mql",
    )  # fmt: skip
    [line] = tailed.stdout.splitlines()
    assert "secure-1" in line
    assert "lead → mql" in line
    for output in (sent.stdout, sent.stderr, tailed.stdout, tailed.stderr, log):
        assert kafka.sasl_password not in output


@pytest.mark.parametrize("command", ["worker", "send", "tail"])
@pytest.mark.parametrize("fault", ["wrong password", "untrusted certificate"])
def test_wrong_security_settings_stop_at_once_and_say_which(
    kafka: KafkaServer, tmp_path: Path, command: str, fault: str
) -> None:
    deployment = Deployment(kafka, tmp_path)
    if fault == "wrong password":
        wrong = {"LEADSCORE_SASL_PASSWORD": WRONG_PASSWORD}
        named = ["LEADSCORE_SASL_USERNAME", "LEADSCORE_SASL_PASSWORD", "refused the login"]
    else:
        other_ca, _ = make_ca(tmp_path / "other-ca", "another CA")
        wrong = {"LEADSCORE_SSL_CAFILE": str(other_ca)}
        named = ["LEADSCORE_SSL_CAFILE", "is not trusted"]
    env = deployment.env(command) | secured(kafka, **wrong)
    argv = {
        "worker": ["worker"],
        "send": ["send", str(events_file(tmp_path, "refused-1"))],
        "tail": ["tail", "--from-beginning", "--idle-timeout", "90"],
    }[command]

    started = time.monotonic()
    done = leadscore(argv, env, timeout=STOPS_WITHIN_S)
    took = time.monotonic() - started

    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert took < STOPS_WITHIN_S
    for name in named:
        assert name in done.stderr, output
    assert kafka.sasl_password not in output
    assert WRONG_PASSWORD not in output
