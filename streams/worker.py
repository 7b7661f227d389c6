"""Running a Faust worker for a leadscore app."""

from __future__ import annotations

import logging
import shutil

from aiokafka.errors import KafkaError

from scoring import Rules
from scoring.errors import LeadscoreError
from scoring.rules import rule_changes
from streams.context import LeadscoreApp
from streams.kafka.deadline import DeadlineWorker
from streams.kafka.pins import mismatches
from streams.settings import Settings, where

log = logging.getLogger(__name__)


class WorkerStopped(LeadscoreError):
    """The worker stopped on an error of Kafka's (its traceback is in the log above)."""


def run(app: LeadscoreApp, previous: Rules | None = None) -> None:
    """Run the worker until SIGINT or SIGTERM; then stop cleanly. `previous`: the rules the
    deployment last started with, if known (`streams.processing.rules_history`).

    Raises WorkerStopped when an error of Kafka's crashed it, after the same clean stop.
    """
    settings = app.settings
    if settings.processing_guarantee == "exactly_once":
        # RocksDB applies table writes at once, also those of a transaction that a crash
        # then aborted; rebuilt from the committed changelog, the tables hold only what
        # the output topics agree with.
        shutil.rmtree(settings.data_dir / "v1" / "tables", ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for mismatch in mismatches():
        log.warning(mismatch)

    @app.faust.task
    async def started() -> None:  # once Faust's logging is set up
        log.info(
            "leadscore worker %s: rules %s, settings %s",
            settings.app_id,
            app.rules.version,
            settings.redacted(),
        )
        if previous is not None and previous.fingerprint != app.rules.fingerprint:
            log.info(
                "the rules changed since the last start (%s, now %s):%s",
                previous.version,
                app.rules.version,
                "".join(f"\n  {line}" for line in rule_changes(previous, app.rules)),
            )

    # Not redirecting stdout: `leadscore dev` prints transitions there.
    worker = DeadlineWorker(
        app.faust, loglevel=settings.log_level, quiet=True, redirect_stdouts=False
    )
    worker.shutdown_timeout = settings.shutdown_timeout
    worker.spinner = None  # its cursor codes would garble what `leadscore dev` prints
    try:
        worker.execute_from_commandline()
    except SystemExit as stopped:
        if stopped.code and isinstance(worker.crash_reason, KafkaError):
            raise WorkerStopped(_kafka_failure(settings, worker.crash_reason)) from None
        raise


def _kafka_failure(settings: Settings, error: KafkaError) -> str:
    if not error.retriable:
        return f"stopped on an error from Kafka: {error}"
    return (
        f"stopped: Kafka at {', '.join(settings.bootstrap_servers)} did not answer in time "
        f"({error}); what the worker sends waits at most {settings.producer_request_timeout:g} s "
        f"for its partition's leader ({where('producer_request_timeout')}). No offset was "
        "committed past what Kafka did not take: start the worker again once Kafka is back."
    )
