# One entry point for people and CI. `make run` and `make test` work on a fresh
# machine: each sets up what it needs (virtual environment, packages, Kafka).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: setup run replay test lint kafka chromium schemas bench chaos overload

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

# The main job: embedded broker, worker and web server, with live demo traffic.
run: setup
	$(BIN)/leadscore dev --demo

# Score the shipped sample offline and print every stage change.
replay: setup
	$(BIN)/leadscore replay examples/events.jsonl --transitions

# Apache Kafka for the integration tests, fetched with Maven into ~/.cache/leadscore.
kafka: setup
	$(BIN)/python -m tests.integration.kafka_server install

# Debian's Chromium for the dashboard's browser test (Playwright drives it).
chromium:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every test: lint and types, unit tests, integration tests on a real Kafka.
test: setup kafka chromium lint
	$(BIN)/python -m pytest

schemas: setup
	$(BIN)/python -m scoring.schemas schemas

bench: setup
	$(BIN)/python benchmarks/replay_throughput.py

# The long chaos run: 20 SIGKILLs over 2 workers while 100,000 messages arrive, per guarantee.
chaos: setup kafka
	$(BIN)/python -m tests.chaos.suite --kills 20 --messages 100000 --guarantee at_least_once
	$(BIN)/python -m tests.chaos.suite --kills 20 --messages 100000 --guarantee exactly_once

# Twice the worker's measured capacity for 5 minutes: lag, memory, the drain, then a verifier.
overload: setup kafka
	$(BIN)/python benchmarks/overload.py --minutes 5
