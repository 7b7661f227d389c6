"""Settings: defaults, precedence (flag > environment > default), validation and secrecy."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from scoring.errors import LeadscoreError
from streams.settings import (
    REDACTED,
    Settings,
    SettingsError,
    add_arguments,
    env_var,
    flag,
    from_arguments,
)

PASSWORD = "hunter2-do-not-print"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LEADSCORE_ variable of the machine running the tests leaks in; help is not wrapped."""
    for name in os.environ:
        if name.upper().startswith("LEADSCORE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "1000")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadscore worker")
    add_arguments(parser)
    return parser


def load(*argv: str) -> Settings:
    return from_arguments(parser().parse_args(argv))


def problems_of(*argv: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load(*argv)
    return str(caught.value)


def test_defaults() -> None:
    assert Settings().model_dump() == {
        "broker": "kafka://127.0.0.1:9092",
        "app_id": "leadscore",
        "input_topics": ["lead-events"],
        "transitions_topic": "lead-transitions",
        "alerts_topic": "sales-alerts",
        "scores_topic": "lead-scores",
        "dlq_topic": "lead-events-dlq",
        "deletions_topic": "lead-deletions",
        "merges_topic": "lead-merges",
        "stitch": False,
        "partitions": 8,
        "replication_factor": 1,
        "rules": None,
        "data_dir": Path("data"),
        "web_bind": "127.0.0.1",
        "web_port": 6066,
        "processing_guarantee": "at_least_once",
        "security_protocol": "PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": None,
        "sasl_password": None,
        "ssl_cafile": None,
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "session_timeout": 30.0,
        "rebalance_timeout": 30.0,
        "heartbeat_interval": 3.0,
        "rules_sweep_rate": 200,
        "decay_check_interval": 10.0,
        "scores_interval": 5.0,
        "api_token": None,
        "webhook_url": None,
        "webhook_attempts": 5,
        "webhook_dlq_topic": "sales-alerts-webhook-dlq",
        "producer_request_timeout": 90.0,
        "commit_interval": 2.8,
        "shutdown_timeout": 25.0,
        "log_level": "info",
    }
    assert load() == Settings()


def test_environment_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_PARTITIONS", "3")
    assert load().partitions == 3


def test_flag_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_PARTITIONS", "3")
    monkeypatch.setenv("LEADSCORE_APP_ID", "from-env")
    settings = load("--partitions", "5")
    assert settings.partitions == 5
    assert settings.app_id == "from-env"


def test_default_of_another_parser_does_not_override_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADSCORE_RULES", "/etc/leadscore/rules.yaml")
    assert from_arguments(argparse.Namespace(rules=None)).rules == Path("/etc/leadscore/rules.yaml")


def test_empty_environment_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_RULES", "")
    assert load().rules is None


def test_input_topics_from_environment_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_INPUT_TOPICS", "web-events, crm-events")
    assert load().input_topics == ["web-events", "crm-events"]
    assert load("--input-topics", "a,b").input_topics == ["a", "b"]


@pytest.mark.parametrize(
    ("topics", "reason"),
    [
        ("good,bad topic", "'bad topic' is not a valid Kafka topic name"),
        ('["a", "b"]', "is not a valid Kafka topic name"),
        ("a,a", "a topic is listed twice"),
        ("lead-events,lead-transitions", "would read leadscore's own output: lead-transitions"),
    ],
)
def test_bad_input_topics_rejected(topics: str, reason: str) -> None:
    assert reason in problems_of("--input-topics", topics)


def test_choice_flag_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--log-level", "verbose"])
    assert "invalid choice: 'verbose'" in capsys.readouterr().err


def test_choice_variable_rejected_with_its_name_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADSCORE_LOG_LEVEL", "verbose")
    message = problems_of()
    assert "--log-level (LEADSCORE_LOG_LEVEL)" in message
    assert "'debug', 'info', 'warning' or 'error'" in message
    assert "'verbose'" in message


def test_settings_error_is_a_leadscore_error() -> None:
    assert issubclass(SettingsError, LeadscoreError)


def test_every_problem_is_listed_with_flag_and_variable() -> None:
    message = problems_of("--partitions", "0", "--web-port", "70000", "--broker", "http://x:1")
    assert "--partitions (LEADSCORE_PARTITIONS): Input should be greater than or equal to 1" in (
        message
    )
    assert "--web-port (LEADSCORE_WEB_PORT)" in message
    assert "--broker (LEADSCORE_BROKER): unsupported scheme 'http'" in message


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_password_rejected(protocol: str) -> None:
    message = problems_of("--security-protocol", protocol, "--sasl-username", "leadscore")
    assert (
        f"--sasl-password (LEADSCORE_SASL_PASSWORD): required with security protocol {protocol}"
        in message
    )
    assert "--sasl-username" not in message


def test_sasl_without_username_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_SASL_PASSWORD", PASSWORD)
    message = problems_of("--security-protocol", "SASL_SSL")
    assert (
        "--sasl-username (LEADSCORE_SASL_USERNAME): required with security protocol SASL_SSL"
        in message
    )
    assert PASSWORD not in message


def test_missing_ssl_file_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    message = problems_of("--security-protocol", "SSL", "--ssl-cafile", str(missing))
    assert f"--ssl-cafile (LEADSCORE_SSL_CAFILE): no such file: {missing}" in message


def test_client_key_needs_a_certificate(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("key")
    assert "--ssl-certfile (LEADSCORE_SSL_CERTFILE): required with a client key" in problems_of(
        "--ssl-keyfile", str(key)
    )


def test_heartbeat_must_be_below_session_timeout() -> None:
    message = problems_of("--session-timeout", "10", "--heartbeat-interval", "10")
    assert "--heartbeat-interval (LEADSCORE_HEARTBEAT_INTERVAL): must be less than" in message
    assert load("--session-timeout", "10", "--heartbeat-interval", "2").heartbeat_interval == 2


@pytest.mark.parametrize(
    ("seconds", "valid"), [("0", False), ("0.5", True), ("60", True), ("61", False)]
)
def test_decay_check_interval_bounds(seconds: str, valid: bool) -> None:
    if valid:
        assert load("--decay-check-interval", seconds).decay_check_interval == float(seconds)
    else:
        assert "--decay-check-interval (LEADSCORE_DECAY_CHECK_INTERVAL)" in problems_of(
            "--decay-check-interval", seconds
        )


def test_output_topics_must_be_distinct() -> None:
    assert "the six output topics must be distinct" in problems_of(
        "--scores-topic", "lead-transitions"
    )


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.partitions = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("broker", "servers"),
    [
        ("kafka://h1:9092,h2:9092", ["h1:9092", "h2:9092"]),
        ("kafka://a:9092;kafka://b:9093", ["a:9092", "b:9093"]),
        ("kafka://solo", ["solo:9092"]),
        ("aiokafka://127.0.0.1:19092/", ["127.0.0.1:19092"]),
        ("tansu://127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("h1:9092", ["h1:9092"]),
    ],
)
def test_bootstrap_servers(broker: str, servers: list[str]) -> None:
    settings = load("--broker", broker)
    assert settings.bootstrap_servers == servers
    # Faust parses its URLs into the same hosts (its Kafka driver's default port is 9092).
    from faust.utils.urls import urllist

    faust_urls = urllist(settings.faust_broker)
    assert [f"{url.host}:{url.port or 9092}" for url in faust_urls] == servers
    scheme = "leadscore-tansu" if broker.startswith("tansu") else "leadscore"
    assert {url.scheme for url in faust_urls} == {scheme}


def test_exactly_once_is_refused_on_tansu_which_has_no_transactions() -> None:
    message = problems_of("--broker", "tansu://127.0.0.1:9092", "--processing-guarantee",
                          "exactly_once")  # fmt: skip
    assert "--processing-guarantee (LEADSCORE_PROCESSING_GUARANTEE): exactly_once needs" in message
    assert load("--broker", "kafka://k:9092", "--processing-guarantee", "exactly_once")


def test_one_kind_of_broker_at_a_time() -> None:
    assert "not both" in problems_of("--broker", "kafka://a:9092;tansu://b:9092")


def test_the_retired_broker_kind_is_refused_with_what_to_do_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADSCORE_BROKER_KIND", "embedded")
    assert "LEADSCORE_BROKER_KIND is no longer read: give a Tansu broker" in problems_of()


@pytest.mark.parametrize("broker", ["", "kafka://", "kafka://h1:port", "http://h1:9092", "h1:0"])
def test_bad_broker_rejected(broker: str) -> None:
    assert "--broker (LEADSCORE_BROKER)" in problems_of("--broker", broker)


@pytest.mark.parametrize("seconds", ["0", "-1"])
def test_producer_request_timeout_must_be_positive(seconds: str) -> None:
    assert "--producer-request-timeout (LEADSCORE_PRODUCER_REQUEST_TIMEOUT)" in problems_of(
        "--producer-request-timeout", seconds
    )


def samples(tmp_path: Path) -> dict[str, tuple[str, Any]]:
    """For every field: a valid non-default value as text, and the value it parses to."""
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    for pem in (ca, cert, key):
        pem.write_text("pem")
    return {
        "broker": ("kafka://k1:9092,k2:9092", "kafka://k1:9092,k2:9092"),
        "app_id": ("scoring-eu", "scoring-eu"),
        "input_topics": ("a,b", ["a", "b"]),
        "transitions_topic": ("t", "t"),
        "alerts_topic": ("al", "al"),
        "scores_topic": ("sc", "sc"),
        "dlq_topic": ("dl", "dl"),
        "deletions_topic": ("gone", "gone"),
        "merges_topic": ("merged", "merged"),
        "stitch": ("true", True),
        "partitions": ("12", 12),
        "replication_factor": ("3", 3),
        "rules": ("/etc/rules.yaml", Path("/etc/rules.yaml")),
        "data_dir": ("/var/lib/leadscore", Path("/var/lib/leadscore")),
        "web_bind": ("0.0.0.0", "0.0.0.0"),
        "web_port": ("7000", 7000),
        "processing_guarantee": ("exactly_once", "exactly_once"),
        "security_protocol": ("SSL", "SSL"),
        "sasl_mechanism": ("SCRAM-SHA-512", "SCRAM-SHA-512"),
        "sasl_username": ("svc", "svc"),
        "sasl_password": (PASSWORD, PASSWORD),
        "ssl_cafile": (str(ca), ca),
        "ssl_certfile": (str(cert), cert),
        "ssl_keyfile": (str(key), key),
        "session_timeout": ("45", 45.0),
        "rebalance_timeout": ("60.5", 60.5),
        "heartbeat_interval": ("1.5", 1.5),
        "rules_sweep_rate": ("0", 0),
        "decay_check_interval": ("30", 30.0),
        "scores_interval": ("1.5", 1.5),
        "api_token": (PASSWORD, PASSWORD),
        "webhook_url": ("http://127.0.0.1:9/hook", "http://127.0.0.1:9/hook"),
        "webhook_attempts": ("3", 3),
        "webhook_dlq_topic": ("hook-dlq", "hook-dlq"),
        "producer_request_timeout": ("15", 15.0),
        "commit_interval": ("0.5", 0.5),
        "shutdown_timeout": ("40", 40.0),
        "log_level": ("debug", "debug"),
    }


def plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_field_has_a_flag_and_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = samples(tmp_path)
    # A client key is only valid with a certificate: give one that each sample still overrides.
    base_cert = tmp_path / "base-cert.pem"
    base_cert.write_text("pem")
    monkeypatch.setenv("LEADSCORE_SSL_CERTFILE", str(base_cert))
    assert set(values) == set(Settings.model_fields), "add a sample for each new setting"
    help_text = parser().format_help()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert flag(name) == "--" + name.replace("_", "-")
        assert env_var(name) == "LEADSCORE_" + name.upper()
        assert flag(name) in help_text
        assert f"(env {env_var(name)}" in help_text

        text, expected = values[name]
        assert plain(getattr(load(flag(name), text), name)) == expected, flag(name)
        with monkeypatch.context() as env:
            env.setenv(env_var(name), text)
            assert plain(getattr(load(), name)) == expected, env_var(name)


def test_help_shows_defaults_and_choices() -> None:
    help_text = parser().format_help()
    assert "(env LEADSCORE_BROKER, default: kafka://127.0.0.1:9092)" in help_text
    assert "(env LEADSCORE_INPUT_TOPICS, default: lead-events)" in help_text
    assert "--security-protocol {PLAINTEXT,SSL,SASL_PLAINTEXT,SASL_SSL}" in help_text
    assert "(env LEADSCORE_SASL_PASSWORD)" in help_text


def test_secrets_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_SASL_PASSWORD", PASSWORD)
    settings = load("--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "svc")
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == PASSWORD
    assert PASSWORD not in parser().format_help()
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    redacted = settings.redacted()
    assert redacted["sasl_password"] == REDACTED
    assert redacted["sasl_username"] == "svc"
    assert set(redacted) == set(Settings.model_fields)
    assert PASSWORD not in str(redacted)


def test_secrets_never_in_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_SASL_PASSWORD", PASSWORD)
    assert PASSWORD not in problems_of("--security-protocol", "SASL_SSL")
    # Short enough that pydantic would not truncate it out of an echoed input.
    with pytest.raises(ValidationError) as caught:
        Settings(security_protocol="SASL_SSL", sasl_password="pw42")
    assert "pw42" not in str(caught.value)


def test_kafka_python_config_plaintext() -> None:
    assert Settings().kafka_python_config() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }


def test_kafka_python_config_sasl_ssl(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text("pem")
    settings = load(
        "--broker", "kafka://k1:9093,k2:9093",
        "--security-protocol", "SASL_SSL",
        "--sasl-mechanism", "SCRAM-SHA-256",
        "--sasl-username", "svc",
        "--sasl-password", PASSWORD,
        "--ssl-cafile", str(cafile),
    )  # fmt: skip
    assert settings.kafka_python_config() == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": PASSWORD,
        "ssl_cafile": str(cafile),
        "ssl_certfile": None,
        "ssl_keyfile": None,
    }


def test_kafka_python_accepts_the_config(tmp_path: Path) -> None:
    from kafka.producer.kafka import KafkaProducer  # type: ignore[import-untyped]

    settings = load(
        "--security-protocol", "SASL_SSL", "--sasl-username", "u", "--sasl-password", "p"
    )
    assert set(settings.kafka_python_config()) <= set(KafkaProducer.DEFAULT_CONFIG)


def test_aiokafka_config_plaintext_and_sasl_ssl() -> None:
    import inspect
    import ssl

    from aiokafka.conn import create_conn

    assert Settings().aiokafka_config() == {"security_protocol": "PLAINTEXT"}
    config = load(
        "--security-protocol", "SASL_SSL",
        "--sasl-mechanism", "SCRAM-SHA-512",
        "--sasl-username", "svc",
        "--sasl-password", PASSWORD,
    ).aiokafka_config()  # fmt: skip
    context = config.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert config == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": PASSWORD,
    }
    assert {"ssl_context", *config} <= set(inspect.signature(create_conn).parameters)


def test_faust_credentials_plaintext_and_sasl() -> None:
    from faust.auth import SASLCredentials
    from faust.types.auth import AuthProtocol, SASLMechanism

    assert Settings().faust_broker_credentials() is None
    credentials = load(
        "--security-protocol", "SASL_PLAINTEXT",
        "--sasl-mechanism", "SCRAM-SHA-512",
        "--sasl-username", "svc",
        "--sasl-password", PASSWORD,
    ).faust_broker_credentials()  # fmt: skip
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert (credentials.username, credentials.password) == ("svc", PASSWORD)
    assert PASSWORD not in repr(credentials)


def test_faust_credentials_ssl_uses_the_system_ca() -> None:
    from faust.auth import SSLCredentials

    credentials = load("--security-protocol", "SSL").faust_broker_credentials()
    assert isinstance(credentials, SSLCredentials)
    assert credentials.context.check_hostname


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_faust_credentials_sasl_ssl_with_client_certificate(tmp_path: Path) -> None:
    from faust.auth import SASLCredentials
    from faust.types.auth import AuthProtocol

    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=leadscore", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    credentials = load(
        "--security-protocol", "SASL_SSL",
        "--sasl-username", "svc",
        "--sasl-password", PASSWORD,
        "--ssl-cafile", str(cert),
        "--ssl-certfile", str(cert),
        "--ssl-keyfile", str(key),
    ).faust_broker_credentials()  # fmt: skip
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert credentials.ssl_context is not None


def test_unreadable_certificate_is_a_settings_error(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text("not a certificate")
    settings = load("--security-protocol", "SSL", "--ssl-cafile", str(cafile))
    with pytest.raises(SettingsError, match="cannot build a TLS context"):
        settings.faust_broker_credentials()


@pytest.mark.parametrize(
    ("command", "theirs", "not_theirs"),
    [
        (
            "send",
            ["--broker", "--sasl-password", "--input-topics"],
            ["--web-port", "--scores-topic"],
        ),
        (
            "tail",
            ["--broker", "--ssl-cafile", "--merges-topic"],
            ["--partitions", "--input-topics"],
        ),
        ("worker", ["--broker", "--web-port", "--partitions", "--input-topics"], []),
    ],
)
def test_each_command_takes_the_settings_it_uses(
    command: str, theirs: list[str], not_theirs: list[str]
) -> None:
    from streams.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {
        flag for action in commands.choices[command]._actions for flag in action.option_strings
    }
    assert set(theirs) <= flags and not set(not_theirs) & flags
    with pytest.raises(SystemExit):
        parser.parse_args([command, "-", *not_theirs[:1], "1"] if not_theirs else [command, "-x"])
