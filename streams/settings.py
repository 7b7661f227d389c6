"""The one settings object: each setting is a field, a LEADSCORE_ variable and a CLI flag.

Precedence: command-line flag, then environment variable, then default.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
from collections.abc import Iterable
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scoring.errors import LeadscoreError

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

ENV_PREFIX = "LEADSCORE_"
REDACTED = "**********"

_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_SSL_PROTOCOLS = ("SSL", "SASL_SSL")
_SSL_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
# Kafka's rule for topic names (kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
# The broker URL schemes, and the Faust transport each selects (`streams.kafka.transport`).
_BROKER_SCHEMES = {
    "kafka": "leadscore",
    "aiokafka": "leadscore",
    "leadscore": "leadscore",
    "tansu": "leadscore-tansu",
}
_RETIRED = {
    "broker_kind": "give a Tansu broker (the embedded one of `leadscore dev`) as "
    "tansu://host:port in --broker (LEADSCORE_BROKER)"
}
_DEFAULT_KAFKA_PORT = 9092


class SettingsError(LeadscoreError):
    """Settings that cannot be used: every problem, each named by its flag and variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid settings:\n{listing}")


def flag(name: str) -> str:
    """The command-line flag of a settings field: `input_topics` -> `--input-topics`."""
    return "--" + name.replace("_", "-")


def env_var(name: str) -> str:
    """The environment variable of a settings field: `input_topics` -> `LEADSCORE_INPUT_TOPICS`."""
    return ENV_PREFIX + name.upper()


def _split_broker(broker: str) -> list[str]:
    """`kafka://h1:9092,h2:9092` (or Faust's `;` between full URLs) -> `["h1:9092", "h2:9092"]`."""
    return _parse_broker(broker)[1]


def _parse_broker(broker: str) -> tuple[str, list[str]]:
    """The Faust transport the broker URL's scheme selects (`leadscore` when none is
    given), and the hosts."""
    schemes = set()
    hosts = []
    for part in re.split(r"[;,]", broker):
        address = part.strip()
        if not address:
            continue
        scheme, separator, rest = address.partition("://")
        if separator:
            if scheme.lower() not in _BROKER_SCHEMES:
                raise ValueError(
                    f"unsupported scheme {scheme!r}: use kafka://host:port[,host:port] "
                    "(or tansu://host:port for a Tansu broker)"
                )
            schemes.add(_BROKER_SCHEMES[scheme.lower()])
            address = rest
        address = address.rstrip("/")
        host, colon, port = address.rpartition(":")
        if not colon:
            host, port = address, str(_DEFAULT_KAFKA_PORT)
        if not host or "/" in host or "@" in host:
            raise ValueError(f"not a host:port: {address!r}")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"not a port number in {address!r}")
        hosts.append(f"{host}:{port}")
    if not hosts:
        raise ValueError("no broker host given: use kafka://host:port[,host:port]")
    if len(schemes) > 1:
        raise ValueError("one kind of broker at a time: kafka:// or tansu://, not both")
    return (schemes.pop() if schemes else "leadscore"), hosts


def _check_topic_name(name: str) -> str:
    if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{name!r} is not a valid Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-')"
        )
    return name


TopicName = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """Everything a leadscore worker needs to know about its deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        env_ignore_empty=True,  # `LEADSCORE_X=` in a compose file means "not set"
        hide_input_in_errors=True,  # a model-level error would otherwise echo the password
    )

    broker: str = Field(
        "kafka://127.0.0.1:9092",
        description="Kafka broker URL; several hosts as kafka://h1:9092,h2:9092; "
        "tansu://host:port for Tansu, the embedded broker of `leadscore dev` (short fetch "
        "waits, end offsets read from Fetch)",
    )
    app_id: str = Field(
        "leadscore",
        description="Faust app id: the consumer group, and the prefix of the changelog topics",
    )
    input_topics: Annotated[list[TopicName], NoDecode] = Field(
        ["lead-events"],
        min_length=1,
        description="topics of Segment-spec input messages, comma-separated",
    )
    transitions_topic: TopicName = Field(
        "lead-transitions", description="output topic of every stage change"
    )
    alerts_topic: TopicName = Field("sales-alerts", description="output topic of changes to sql")
    scores_topic: TopicName = Field(
        "lead-scores", description="compacted output topic of the latest score per lead"
    )
    dlq_topic: TopicName = Field(
        "lead-events-dlq", description="dead-letter topic of rejected input messages"
    )
    deletions_topic: TopicName = Field(
        "lead-deletions", description="output topic of the leads forgotten on a delete request"
    )
    merges_topic: TopicName = Field(
        "lead-merges", description="output topic of the leads merged into another (stitching)"
    )
    stitch: bool = Field(
        False,
        description="stitch identities in the stream: a known lead absorbs the anonymous "
        "ids its messages carry (see the README, 'Stitching in the stream')",
    )
    partitions: int = Field(8, ge=1, description="partitions of the topics leadscore creates")
    replication_factor: int = Field(
        1, ge=1, description="replication factor of the topics leadscore creates"
    )
    rules: Path | None = Field(
        None, description="rules file (YAML); unset means the example rules shipped with leadscore"
    )
    data_dir: Path = Field(Path("data"), description="Faust data directory (RocksDB table store)")
    web_bind: str = Field("127.0.0.1", description="address the web views listen on")
    web_port: int = Field(6066, ge=1, le=65535, description="port the web views listen on")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="delivery guarantee: at_least_once, or exactly_once (the worker's own Kafka "
        "transactions; read outputs read_committed; refused on Tansu, which has no "
        "transactions)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)"
    )
    sasl_username: str | None = Field(
        None, description="SASL user name (required with SASL_PLAINTEXT or SASL_SSL)"
    )
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (required with SASL_PLAINTEXT or SASL_SSL)"
    )
    ssl_cafile: Path | None = Field(
        None, description="CA certificates (PEM) to verify the broker; unset means the system's"
    )
    ssl_certfile: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: Path | None = Field(
        None, description="private key (PEM) of the client certificate"
    )
    session_timeout: Seconds = Field(
        30.0, description="seconds without a heartbeat before Kafka evicts a worker from the group"
    )
    rebalance_timeout: Seconds = Field(
        30.0, description="seconds the group waits for workers to rejoin during a rebalance"
    )
    heartbeat_interval: Seconds = Field(
        3.0, description="seconds between heartbeats to the group coordinator"
    )
    rules_sweep_rate: int = Field(
        200,
        ge=0,
        description="leads a second that the rules sweep brings to new rules when they have "
        "no new message (0: only their next message does)",
    )
    decay_check_interval: float = Field(
        10.0,
        gt=0,
        le=60,
        description="seconds between sweeps for leads whose engagement decayed out of mql "
        "or whose SLA ran out",
    )
    scores_interval: float = Field(
        5.0,
        gt=0,
        le=300,
        description="the longest a changed lead waits for its lead-scores snapshot: each "
        "flush of state (every offset commit, and at least this often) sends the latest of "
        "each lead that changed",
    )
    api_token: SecretStr | None = Field(
        None,
        description="bearer token required by the web API and dashboard data (all but "
        "/health and /metrics); unset: no token",
    )
    webhook_url: SecretStr | None = Field(
        None,
        description="POST each sales alert as JSON (Slack-compatible) to this URL (secret: "
        "Slack's URLs carry a token)",
    )
    webhook_attempts: int = Field(
        5, ge=1, le=10, description="tries per alert before it goes to the webhook DLQ topic"
    )
    webhook_dlq_topic: str = Field(
        "sales-alerts-webhook-dlq", description="topic for alerts the webhook kept refusing"
    )
    producer_request_timeout: Seconds = Field(
        90.0,
        description="seconds a record the worker sends may wait for its partition's leader "
        "and the broker's answer; then it fails, and the worker stops without committing",
    )
    commit_interval: float = Field(
        2.8,
        gt=0,
        description="seconds between commits of consumed offsets (at-least-once: what a "
        "crash may replay)",
    )
    shutdown_timeout: Seconds = Field(
        25.0,
        description="seconds a clean stop (SIGTERM, SIGINT) may take; then the worker writes "
        "its threads' stacks to the log and exits at once with code 3, as a kill would (safe "
        "in both guarantees); keep it below your supervisor's grace period (Kubernetes: 30 s)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    @field_validator("input_topics", mode="before")
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [topic.strip() for topic in value.split(",") if topic.strip()]
        return value

    @field_validator("input_topics")
    @classmethod
    def _check_input_topics(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            _check_topic_name(topic)
        if len(set(topics)) != len(topics):
            raise ValueError("a topic is listed twice")
        return topics

    @field_validator(
        "app_id", "transitions_topic", "alerts_topic", "scores_topic", "dlq_topic",
        "deletions_topic", "merges_topic", "webhook_dlq_topic",
    )  # fmt: skip
    @classmethod
    def _check_topic(cls, name: str) -> str:
        return _check_topic_name(name)

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            from yarl import URL

            try:
                parsed = URL(url.get_secret_value())
            except ValueError:
                parsed = URL()
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise ValueError("must be an absolute http:// or https:// URL")
        return url

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, broker: str) -> str:
        _split_broker(broker)
        return broker

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        problems: dict[str, str] = {}
        if self.security_protocol in _SASL_PROTOCOLS:
            for name in ("sasl_username", "sasl_password"):
                value = getattr(self, name)
                secret = value.get_secret_value() if isinstance(value, SecretStr) else value
                if not secret:
                    problems[name] = f"required with security protocol {self.security_protocol}"
        for name in _SSL_FILES:
            path = getattr(self, name)
            if path is not None and not path.is_file():
                problems[name] = f"no such file: {path}"
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            problems["ssl_certfile"] = f"required with a client key ({flag('ssl_keyfile')})"
        tansu = _parse_broker(self.broker)[0] == _BROKER_SCHEMES["tansu"]
        if tansu and self.processing_guarantee == "exactly_once":
            problems["processing_guarantee"] = (
                "exactly_once needs transactions, which Tansu (a tansu:// broker) does not "
                "have: use at_least_once"
            )
        if self.heartbeat_interval >= self.session_timeout:
            problems["heartbeat_interval"] = (
                f"must be less than the session timeout ({self.session_timeout:g} s)"
            )
        outputs = [
            self.transitions_topic, self.alerts_topic, self.scores_topic, self.dlq_topic,
            self.deletions_topic, self.merges_topic,
        ]  # fmt: skip
        if len(set(outputs)) != len(outputs):
            problems["transitions_topic"] = "the six output topics must be distinct"
        if self.webhook_dlq_topic in [*outputs, *self.input_topics]:
            problems["webhook_dlq_topic"] = "must differ from the input and output topics"
        if looped := sorted(set(self.input_topics) & set(outputs)):
            problems["input_topics"] = f"would read leadscore's own output: {', '.join(looped)}"
        if problems:
            summary = "; ".join(f"{name}: {reason}" for name, reason in problems.items())
            raise PydanticCustomError(
                "inconsistent_settings", "{summary}", {"summary": summary, "problems": problems}
            )
        return self

    @property
    def faust_broker(self) -> list[str]:
        """The broker as Faust's URLs, whose scheme selects leadscore's transport:
        `["leadscore://h1:9092", ...]`, or `leadscore-tansu://` for a Tansu broker."""
        transport, hosts = _parse_broker(self.broker)
        return [f"{transport}://{host}" for host in hosts]

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker's hosts as kafka-python wants them: `["h1:9092", "h2:9092"]`."""
        return _split_broker(self.broker)

    def kafka_python_config(self) -> dict[str, Any]:
        """Connection keyword arguments for kafka-python's KafkaProducer and KafkaConsumer."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in _SASL_PROTOCOLS:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in _SSL_PROTOCOLS:
            for name in _SSL_FILES:
                path = getattr(self, name)
                config[name] = None if path is None else str(path)
        return config

    def aiokafka_config(self) -> dict[str, Any]:
        """Security keyword arguments for an aiokafka connection, as Faust's credentials make."""
        config: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in _SSL_PROTOCOLS:
            config["ssl_context"] = self.ssl_context()
        if self.security_protocol in _SASL_PROTOCOLS:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return config

    def faust_broker_credentials(self) -> CredentialsT | None:
        """Faust's `broker_credentials`: None for PLAINTEXT, else SASL or SSL credentials."""
        if self.security_protocol == "PLAINTEXT":
            return None
        from faust.auth import SASLCredentials, SSLCredentials

        context = self.ssl_context() if self.security_protocol in _SSL_PROTOCOLS else None
        if self.security_protocol == "SSL":
            return SSLCredentials(context)
        return SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password.get_secret_value() if self.sasl_password else None,
            ssl_context=context,
            mechanism=self.sasl_mechanism,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context that verifies the broker (and presents the client certificate)."""
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH,
                cafile=None if self.ssl_cafile is None else str(self.ssl_cafile),
            )
            if self.ssl_certfile is not None:
                context.load_cert_chain(
                    self.ssl_certfile, None if self.ssl_keyfile is None else self.ssl_keyfile
                )
        except (ssl.SSLError, OSError) as error:
            raise SettingsError(
                [
                    f"{flag('ssl_cafile')}, {flag('ssl_certfile')}, {flag('ssl_keyfile')}: "
                    f"cannot build a TLS context: {error}"
                ]
            ) from None
        return context

    def redacted(self) -> dict[str, str]:
        """Every setting as text for a start-up log line, secrets masked."""
        return {name: _display(getattr(self, name)) for name in type(self).model_fields}


def _display(value: object) -> str:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return "" if value is None else str(value)


def _plain_annotation(field: FieldInfo) -> Any:
    """The field's type without `| None`."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def is_secret(field: FieldInfo) -> bool:
    """Whether the field holds a credential that must never be printed."""
    return _plain_annotation(field) is SecretStr


# What a Kafka client of the command line needs (`leadscore send`, `leadscore tail`):
# where the broker is and how to log in.
CONNECTION = (
    "broker",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
)
OUTPUT_TOPICS = (
    "transitions_topic",
    "alerts_topic",
    "scores_topic",
    "dlq_topic",
    "deletions_topic",
    "merges_topic",
)


def add_arguments(parser: argparse.ArgumentParser, only: Iterable[str] | None = None) -> None:
    """Add one flag per setting (or per setting in `only`: those the command uses); only
    flags given on the command line override."""
    group = parser.add_argument_group(
        "settings", "each flag overrides its environment variable, which overrides the default"
    )
    fields = Settings.model_fields
    names = list(fields) if only is None else list(only)
    for name in names:
        field = fields[name]
        origin = f"env {env_var(name)}"
        if not is_secret(field) and field.default is not None:
            origin += f", default: {_display(field.default)}"
        annotation = _plain_annotation(field)
        group.add_argument(
            flag(name),
            dest=name,
            default=argparse.SUPPRESS,
            choices=get_args(annotation) if get_origin(annotation) is Literal else None,
            help=f"{field.description} ({origin})".replace("%", "%%"),
        )


def from_arguments(args: argparse.Namespace) -> Settings:
    """Settings from the flags given, then LEADSCORE_ variables, then defaults."""
    retired = [
        f"{env_var(name)} is no longer read: {instead}"
        for name, instead in _RETIRED.items()
        if os.environ.get(env_var(name))
    ]
    if retired:
        raise SettingsError(retired)
    # A value of None cannot come from a flag: it is another parser's default for the same name.
    overrides = {
        name: value
        for name in Settings.model_fields
        if (value := getattr(args, name, None)) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_problems(error)) from None


def where(name: str) -> str:
    """How a setting is named to people: `--ssl-cafile (LEADSCORE_SSL_CAFILE)`."""
    return f"{flag(name)} ({env_var(name)})"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        if detail["type"] == "inconsistent_settings":
            for name, reason in detail["ctx"]["problems"].items():
                problems.append(f"{where(name)}: {reason}")
            continue
        reason = str(detail["ctx"]["error"]) if detail["type"] == "value_error" else detail["msg"]
        if not detail["loc"]:
            problems.append(reason)
            continue
        name = str(detail["loc"][0])
        field = Settings.model_fields.get(name)
        given = detail.get("input")
        if field is not None and not is_secret(field) and isinstance(given, str | int | float):
            reason += f" (got {given!r})"
        problems.append(f"{where(name)}: {reason}")
    return problems
