"""leadscore's Faust transport: Faust's aiokafka transport with leadscore's consumer and
producer, plugged in the way Faust intends.

The package registers it with Faust's `faust.transports` entry point (pyproject.toml),
and the broker URL's scheme selects it: `create_app` hands Faust `leadscore://` URLs
for a Kafka broker and `leadscore-tansu://` ones for Tansu (the embedded broker of
`leadscore dev`; `tansu://` in `LEADSCORE_BROKER`). Every override of a private
faust-streaming or aiokafka internal lives in this package (`streams.kafka`), written
for the versions `streams.kafka.pins` names:

- `DeliveringConsumer` (`streams.kafka.consumer`): the scoring topics' records handed
  to the scorer as they are fetched, Faust's commit step with leadscore's flush before
  it, records read committed with exactly once, and one cheaper `wait_first`.
- `TansuConsumer` (`streams.kafka.tansu`): short Fetch waits and end offsets from
  Fetch, for Tansu.
- `TopicTrackingFaustProducer` (`streams.kafka.producer`): every topic written to kept
  in the producer's metadata.

What the consumer is given per app (its intake, its step before each commit) is set
with `use_intake` and `use_before_commit` before the worker starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT, ProducerT

from streams.kafka.consumer import ConsumerHooks, DeliveringConsumer, Handle, Intake
from streams.kafka.producer import TopicTrackingFaustProducer, TopicTrackingProducer
from streams.kafka.tansu import TansuConsumer


class Transport(faust_aiokafka.Transport):
    """Apache Kafka (or a compatible broker), as leadscore's worker reads and writes it."""

    Consumer: ClassVar[type[ConsumerT]] = DeliveringConsumer
    Producer: ClassVar[type[ProducerT]] = TopicTrackingFaustProducer

    hooks: ConsumerHooks

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hooks = ConsumerHooks()

    def create_consumer(self, callback: Any, **kwargs: Any) -> ConsumerT:
        return self.Consumer(self, callback=callback, loop=self.loop, hooks=self.hooks, **kwargs)


class TansuTransport(Transport):
    """Tansu (the embedded broker), tuned for how it answers (`streams.kafka.tansu`)."""

    Consumer: ClassVar[type[ConsumerT]] = TansuConsumer


def leadscore_transport(app: faust.App) -> Transport:
    """The app's (consumer) transport, to be configured before the worker starts."""
    if app._consumer is not None:
        raise RuntimeError("the app's consumer exists already: configure it earlier")
    transport = app.transport  # made lazily, and without binding an event loop
    if not isinstance(transport, Transport):
        raise TypeError(
            f"leadscore's worker needs its own transport (a leadscore:// broker URL), "
            f"not {type(transport).__module__}.{type(transport).__qualname__}"
        )
    return transport


def kafka_producer(app: faust.App) -> TopicTrackingProducer:
    """The aiokafka producer under the app's Faust producer (once it has started)."""
    return cast(TopicTrackingFaustProducer, app.producer).kafka


def use_intake(
    app: faust.App,
    topics: Iterable[str],
    handle: Handle,
    after_fetch: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Hand the records of `topics` to `handle` (see `Intake`), beside the topics handed
    before, and await `after_fetch` (if given) after each fetch's records were handed. The
    topics must be subscribed (e.g. `app.topics.add(topic)`). Call before the worker
    starts."""
    hooks = leadscore_transport(app).hooks
    intake = hooks.intake or Intake({})
    handlers = {**intake.handlers, **dict.fromkeys(topics, handle)}
    hooks.intake = Intake(handlers, after_fetch or intake.after_fetch)


def use_before_commit(
    app: faust.App,
    before_commit: Callable[[Mapping[TP, int]], Awaitable[None]],
    *,
    commits: bool = False,
) -> None:
    """Await `before_commit(offsets)` before every offset commit, once per commit, with the
    offsets to be committed (those of partitions still assigned). An error in it stops
    the commit (Faust then crashes the worker). With `commits`, `before_commit` commits
    the offsets itself (in a transaction) and the consumer reads committed records only.
    Call before the worker starts."""
    hooks = leadscore_transport(app).hooks
    hooks.before_commit = before_commit
    hooks.transactional = commits
