"""What the worker's parts share: the app type they are given, and its constants.

`streams.app.create_app` builds a `LeadscoreApp` and hands it to each part
(`streams.processing`, `streams.web`, `streams.sinks`); the parts import
this module, never the composition root.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.types import TP, TableT, TopicT
from pydantic import BaseModel

from scoring import LeadState, Rules, next_crossing
from streams.kafka.consumer import DeliveringConsumer, Handle
from streams.kafka.transactions import Transaction
from streams.kafka.transport import kafka_producer
from streams.metrics import Metrics
from streams.settings import Settings
from streams.state.crossings import CrossingIndex
from streams.state.hot import HotLeads
from streams.state.outdated import OutdatedLeads
from streams.state.store import LeadStore
from streams.state.waiting import WaitingSqls

PRODUCER_LINGER_S = 0.005
FUNNEL_KEY = b"funnel"
RECENT_KEY = b"recent"
CONTROL_HEADER = "leadscore-control"
DECAY_CHECK = b"decay-check"
RULES_CHECK = b"rules-check"
# On a repartitioned record: where it was first read, "topic:partition:position".
ORIGIN_HEADER = "leadscore-origin"
# A message's position in its source partition: the record's offset times ITEMS_PER_RECORD
# plus its index in the record (a batch body is many messages; any other record is one).
ITEMS_PER_RECORD = 1 << 20


@dataclass
class Live:
    """What changes while a worker runs: its metrics, the in-memory indexes of the leads it
    owns (rebuilt after each rebalance), the decoded funnel, the position of the last
    record handled per input partition, and whether it is ready. The app's wiring
    (`LeadscoreApp`: settings, rules, topics, tables) does not change after `create_app`."""

    rules: Rules
    metrics: Metrics = field(default_factory=Metrics)
    # The funnel totals and recent transitions, decoded (on the worker owning them).
    funnel_cache: dict[bytes, BaseModel] = field(default_factory=dict)
    hot: HotLeads = field(default_factory=HotLeads)
    crossings: CrossingIndex = field(default_factory=CrossingIndex)
    waiting: WaitingSqls = field(default_factory=WaitingSqls)
    outdated: OutdatedLeads = field(default_factory=OutdatedLeads)
    # (topic, partition) -> offset of the last record the scorer handled.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    ready: bool = False

    def index(self, lead_key: bytes, state: LeadState | None) -> None:
        """A changed lead (None: deleted) into the in-memory indexes the timers and web
        views read: its next crossing, its engagement rank, its wait for a rep."""
        if state is None:
            self.crossings.set(lead_key, None)
            self.hot.forget(lead_key)
            self.waiting.forget(lead_key)
            return
        self.crossings.set(lead_key, next_crossing(state, self.rules))
        self.hot.update(lead_key, state, self.rules)
        self.waiting.update(lead_key, state, self.rules)

    def clear_indexes(self) -> None:
        self.crossings.clear()
        self.hot.clear()
        self.waiting.clear()
        self.outdated.clear()


@dataclass
class LeadscoreApp:
    """The Faust app and what its agent, timers and views share: the wiring, set up once
    by `create_app`, and what changes as the worker runs (`live`)."""

    settings: Settings
    rules: Rules
    faust: faust.App
    events: TopicT  # the input topics and the repartition topic, one channel
    repartition: TopicT
    transitions: TopicT
    alerts: TopicT
    scores: TopicT
    dead_letters: TopicT
    deletions: TopicT
    merges: TopicT
    leads: TableT[bytes, bytes]  # lead id -> encoded scoring.LeadState
    recent: TableT[bytes, bytes]  # lead id -> JSON list of its last transitions, newest first
    funnel_topic: TopicT  # one partition: every transition, and new-lead counts
    transitions_in: TopicT  # the transitions topic, read back for the funnel
    mql_since: TableT[bytes, bytes]  # lead id -> scoring.funnel.LeadFunnel JSON
    funnel: TableT[bytes, bytes]  # FUNNEL_KEY -> scoring.funnel.Funnel JSON
    identities: TableT[bytes, bytes]  # b"anon:" + id -> its holder (streams.processing.stitching)
    live: Live = field(init=False)
    # The leads' states as the scorer works on them (see streams.state.store).
    store: LeadStore = field(init=False)
    # With exactly_once: the worker's transaction (what the scorer sends goes in it).
    transaction: Transaction | None = None

    def __post_init__(self) -> None:
        self.live = Live(self.rules)

    def next_offset(self, tp: TP) -> int:
        """The offset of the next record of input partition `tp` the scorer will handle: after
        a restart or rebalance the committed one until a record comes (a partition with no
        record since is not behind), else one past the last record handled."""
        upcoming = cast(DeliveringConsumer, self.faust.consumer).next_offset(tp)
        if upcoming is None:  # nothing read or sought yet
            upcoming = self.live.positions.get((tp.topic, tp.partition), -1) + 1
        return upcoming

    def owned_partitions(self) -> list[int]:
        """The lead partitions this worker owns (actively) in the current assignment."""
        first_input = self.settings.input_topics[0]
        return sorted(
            tp.partition for tp in self.faust.assignor.assigned_actives() if tp.topic == first_input
        )

    def between_commits(self) -> AbstractAsyncContextManager[Any]:
        """Held while a record is handled: with exactly_once, no commit runs meanwhile, so
        a transaction holds the outputs of exactly the records whose state it holds."""
        return nullcontext() if self.transaction is None else self.store.lock

    def between_commits_of(self, handle: Handle) -> Handle:
        """`handle`, each call inside `between_commits` (with exactly_once; else as is)."""
        if self.transaction is None:
            return handle

        async def handled(message: Any) -> None:
            async with self.between_commits():
                await handle(message)

        return handled

    async def emit(
        self,
        topic: TopicT,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send a record the scorer owes downstream (in the transaction, with exactly_once);
        the store's next flush (and so the commit of its message's offset) waits for its
        delivery and fails without it."""
        # aiokafka's producer itself: Faust's `topic.send` wraps each record in futures and
        # callbacks that cost more than the send (a tenth of the worker's time once the
        # scorer sends a claim or a hand-over for many messages).
        kafka: Any
        if self.transaction is None:
            kafka = kafka_producer(self.faust)
        else:
            kafka = await self.transaction.producer()
        sending = await kafka.send(
            topic.get_topic_name(), value, key=key, partition=partition, headers=headers
        )
        self.store.sent(sending)
