"""docker-compose.yml, Dockerfile and .dockerignore, checked statically (no Docker here)."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings, env_var, from_arguments

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ("worker-1", "worker-2")
CONTAINER_WEB_PORT = 6066


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services[name]


def environment(definition: dict[str, Any]) -> dict[str, str]:
    """A service's environment, in either of compose's two spellings."""
    given = definition.get("environment") or {}
    if isinstance(given, list):
        return dict(item.split("=", 1) for item in given)
    return {name: "" if value is None else str(value) for name, value in given.items()}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    instructions = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def instruction(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile() if name == keyword]


def dockerfile_environment() -> dict[str, str]:
    variables = {}
    for arguments in instruction("ENV"):
        for word in shlex.split(arguments):
            name, _, value = word.partition("=")
            variables[name] = value
    return variables


def settings_from(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.upper().startswith("LEADSCORE_"):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return from_arguments(argparse.Namespace())


def leadscore_variables(variables: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in variables.items() if name.startswith("LEADSCORE_")}


def test_services() -> None:
    assert {"kafka", *WORKERS} <= set(compose()["services"])


def test_kafka_is_a_single_kraft_node() -> None:
    kafka = service("kafka")
    assert kafka["image"] == "apache/kafka:4.1.1"
    variables = environment(kafka)
    assert variables["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node_id = variables["KAFKA_NODE_ID"]
    assert variables["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@kafka:")
    listeners = variables["KAFKA_LISTENERS"].split(",")
    assert any(listener.startswith("CONTROLLER://") for listener in listeners)
    assert variables["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert variables[name] == "1", name
    assert variables["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in json.dumps(kafka["healthcheck"])
    for port in kafka.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), "Kafka is published on loopback only"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_settings_are_real_and_valid(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    variables = leadscore_variables(environment(service(name)))
    assert variables, f"{name} sets no LEADSCORE_ variable"
    known = {env_var(field) for field in Settings.model_fields}
    assert set(variables) <= known, f"not a setting: {sorted(set(variables) - known)}"
    # Paths that exist only in the container are fine: Settings does not check the rules file.
    settings = settings_from(variables, monkeypatch)
    assert settings.web_bind == "0.0.0.0"
    assert settings.data_dir == Path("/data")
    assert settings.processing_guarantee == "at_least_once"
    assert settings.partitions == 8


@pytest.mark.parametrize("name", WORKERS)
def test_worker_reaches_kafka_on_an_advertised_listener(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(leadscore_variables(environment(service(name))), monkeypatch)
    advertised = {
        listener.split("://", 1)[1]
        for listener in environment(service("kafka"))["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    assert set(settings.bootstrap_servers) <= advertised


def test_dockerfile_settings_are_real_and_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = leadscore_variables(dockerfile_environment())
    assert set(variables) <= {env_var(field) for field in Settings.model_fields}
    settings_from(variables, monkeypatch)


@pytest.mark.parametrize("name", WORKERS)
def test_worker_is_built_from_the_dockerfile(name: str) -> None:
    build = service(name)["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile_name = (
        "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    )
    assert (context / dockerfile_name).resolve() == ROOT / "Dockerfile"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_waits_for_a_healthy_kafka_and_has_a_healthcheck(name: str) -> None:
    worker = service(name)
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    check = worker["healthcheck"]
    assert not check.get("disable", False)
    assert f"http://127.0.0.1:{CONTAINER_WEB_PORT}/health" in json.dumps(check["test"])


def mounts(name: str) -> dict[str, tuple[str, str]]:
    """Container path -> (source, options) of a service's short-syntax volumes."""
    table = {}
    for volume in service(name).get("volumes", []):
        source, target, *options = volume.split(":")
        table[target] = (source, ",".join(options))
    return table


def test_each_worker_has_its_own_data_volume() -> None:
    sources = []
    for name in WORKERS:
        data_dir = environment(service(name))["LEADSCORE_DATA_DIR"]
        source, _ = mounts(name)[data_dir]
        assert source in compose()["volumes"], f"{name}: {source} is not a named volume"
        sources.append(source)
    assert len(set(sources)) == len(WORKERS)


@pytest.mark.parametrize("name", WORKERS)
def test_rules_are_mounted_read_only_where_the_setting_points(name: str) -> None:
    rules = environment(service(name))["LEADSCORE_RULES"]
    source, options = mounts(name)[rules]
    assert "ro" in options.split(",")
    assert (ROOT / source).resolve() == ROOT / "scoring" / "example_rules.yaml"
    assert (ROOT / source).is_file()


def test_web_ports_published_on_loopback_only() -> None:
    published = []
    for name in WORKERS:
        (port,) = service(name)["ports"]
        host, host_port, container_port = str(port).split(":")
        assert host == "127.0.0.1"
        assert int(container_port) == CONTAINER_WEB_PORT
        published.append(int(host_port))
    assert sorted(published) == [6066, 6067]


def test_dockerfile_runs_the_leadscore_worker_as_a_non_root_user() -> None:
    assert instruction("FROM") == ["python:3.11-slim"]
    assert [json.loads(arguments) for arguments in instruction("ENTRYPOINT")] == [["leadscore"]]
    assert [json.loads(arguments) for arguments in instruction("CMD")] == [["worker"]]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "leadscore" in pyproject["project"]["scripts"]
    assert str(CONTAINER_WEB_PORT) in instruction("EXPOSE")
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")
    (healthcheck,) = instruction("HEALTHCHECK")
    assert f"http://127.0.0.1:{CONTAINER_WEB_PORT}/health" in healthcheck
    assert "curl" not in healthcheck, "python:3.11-slim has no curl"


def test_dockerfile_copies_what_pip_needs_and_dockerignore_keeps_it() -> None:
    copied = []
    for arguments in instruction("COPY"):
        *sources, _ = arguments.split()
        copied += [source.rstrip("/") for source in sources if not source.startswith("--")]
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "scoring", "streams"} <= set(copied)
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    for heavy in (".venv", "data", "benchmarks/out", ".git"):
        assert heavy in ignored
