"""Running a Faust worker for a leadscore app."""

from __future__ import annotations

import logging
import shutil

import faust

from streams.app import LeadscoreApp


def run(app: LeadscoreApp) -> None:
    """Run the worker until SIGINT or SIGTERM; then stop cleanly."""
    settings = app.settings
    if settings.processing_guarantee == "exactly_once":
        # RocksDB applies table writes at once, also those of a transaction that a crash
        # then aborted; rebuilt from the committed changelog, the tables hold only what
        # the output topics agree with.
        shutil.rmtree(settings.data_dir / "v1" / "tables", ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger(__name__).info(
        "leadscore worker %s: rules %s, settings %s",
        settings.app_id,
        app.rules.version,
        settings.redacted(),
    )
    # Not redirecting stdout: `leadscore dev` prints transitions there.
    worker = faust.Worker(
        app.faust, loglevel=settings.log_level, quiet=True, redirect_stdouts=False
    )
    worker.spinner = None  # its cursor codes would garble what `leadscore dev` prints
    worker.execute_from_commandline()
