"""Faust's worker with a deadline on its clean stop (an override of mode's
`Worker._schedule_shutdown`, written for the versions `streams.kafka.pins` names)."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading

import faust

from streams.settings import where

log = logging.getLogger(__name__)

STUCK_EXIT_CODE = 3


class DeadlineWorker(faust.Worker):
    """A worker whose clean stop has a deadline.

    Faust's stop can wait forever, for one when a rebalance begins while it stops (the
    consumer thread then waits in its assignment callback for services already stopped).
    A supervisor would kill it in the end; the deadline does it sooner, and leaves the
    stacks that show where it waited. A stop cut short is a kill, which both guarantees
    are made for: what was not committed is read again.
    """

    shutdown_timeout: float = 25.0

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if not self._signal_stop_time:
            deadline = threading.Timer(self.shutdown_timeout, _stuck, (self.shutdown_timeout,))
            deadline.daemon = True
            deadline.start()
        super()._schedule_shutdown(signal)


def _stuck(timeout: float) -> None:
    log.error(
        "the worker did not stop in %g s (%s): its threads' stacks follow; exiting with "
        "code %d, as a kill would",
        timeout,
        where("shutdown_timeout"),
        STUCK_EXIT_CODE,
    )
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(STUCK_EXIT_CODE)
