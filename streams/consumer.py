"""The worker's Kafka consumer: Faust's, with a cheaper hand-over of each record.

Faust's consumer loop (`Consumer._drain_messages`) hands every record to the
agents with `wait_first(deliver(record), suspend_flow.wait())`: a race that
lets a rebalance abandon a delivery stuck on a full stream buffer. It costs
four tasks and an `asyncio.wait` per record, more than a tenth of what a
leadscore worker spends per message. Most deliveries never wait (the record
goes straight into the stream's buffer), so `DeliveringConsumer` runs the
delivery's first step inline and races only the deliveries that do wait,
exactly as Faust does. faust-streaming is pinned, and this overrides the one
`wait_first` call of its consumer.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitArgT, WaitResults


class DeliveringConsumer(faust_aiokafka.Consumer):
    async def wait_first(self, *coros: WaitArgT, timeout: Any = None) -> WaitResults:
        if (
            len(coros) != 2
            or timeout is not None
            or not asyncio.iscoroutine(coros[0])
            or self.suspend_flow.is_set()
            or self.should_stop
        ):
            return await super().wait_first(*coros, timeout=timeout)
        delivery = coros[0]
        suspended = coros[1]
        try:
            waiting_on = delivery.send(None)
        except StopIteration as done:
            _close(suspended)  # the race was not needed
            return WaitResults([delivery], [done.value], False)
        rest = asyncio.ensure_future(_resume(delivery, waiting_on))
        return await super().wait_first(rest, suspended)


def _close(coro: WaitArgT) -> None:
    if asyncio.iscoroutine(coro):
        coro.close()


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Go on with `coro`, which has run its first step and yielded `waiting_on`
    (what `await coro` would do from there on, cancellation included)."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as error:  # thrown in, e.g. CancelledError: on to the coroutine
            try:
                waiting_on = coro.throw(error)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as done:
                return done.value


def use_delivering_consumer(app: faust.App) -> None:
    """Make the app's worker consumer a `DeliveringConsumer`. Call before the worker starts."""
    transport = worker_transport(app)
    if not issubclass(transport.Consumer, DeliveringConsumer):
        consumer = type("Consumer", (DeliveringConsumer, transport.Consumer), {})
        transport.Consumer = consumer  # type: ignore[misc]


def worker_transport(app: faust.App) -> faust_aiokafka.Transport:
    """The app's transport, whose `Consumer` class leadscore may replace: an instance
    attribute, which `Transport.create_consumer` instantiates when the worker starts."""
    if app._consumer is not None:
        raise RuntimeError("the app's consumer exists already: set its class earlier")
    transport = app.transport  # made lazily, and without binding an event loop
    if not isinstance(transport, faust_aiokafka.Transport):
        raise TypeError(f"leadscore needs Faust's aiokafka transport, not {type(transport)}")
    return transport
