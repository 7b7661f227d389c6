"""The Faust application: where settings, topics, the table, agent, timer and views meet."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.types import TP, TableT, TopicT
from pydantic import BaseModel

from scoring import LeadState, Rules, next_crossing
from streams.consumer import (
    DeliveringConsumer,
    Handle,
    use_before_commit,
    use_delivering_consumer,
)
from streams.crossings import CrossingIndex
from streams.hot import HotLeads
from streams.metrics import LeanMonitor, Metrics
from streams.outdated import OutdatedLeads
from streams.producer import use_topic_tracking_producer
from streams.settings import Settings
from streams.store import LeadStore
from streams.topics import MAX_RECORD_BYTES, TABLES, funnel_topic, repartition_topic
from streams.transactions import Transaction, TransactionalTableManager
from streams.tuning import tune_for_embedded_broker
from streams.waiting import WaitingSqls

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
class LeadscoreApp:
    """The Faust app and what its agent, timer and views share."""

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
    identities: TableT[bytes, bytes]  # b"anon:" + id -> its holder (streams.stitching)
    metrics: Metrics = field(default_factory=Metrics)
    # The leads' states as the scorer works on them (see streams.store).
    store: LeadStore = field(init=False)
    # The funnel totals and recent transitions, decoded (on the worker owning them).
    funnel_cache: dict[bytes, BaseModel] = field(default_factory=dict)
    hot: HotLeads = field(default_factory=HotLeads)
    crossings: CrossingIndex = field(default_factory=CrossingIndex)
    waiting: WaitingSqls = field(default_factory=WaitingSqls)
    outdated: OutdatedLeads = field(default_factory=OutdatedLeads)
    # (topic, partition) -> offset of the last record the scorer handled.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    # With exactly_once: the worker's transaction (what the scorer sends goes in it).
    transaction: Transaction | None = None
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

    def next_offset(self, tp: TP) -> int:
        """The offset of the next record of input partition `tp` the scorer will handle: after
        a restart or rebalance the committed one until a record comes (a partition with no
        record since is not behind), else one past the last record handled."""
        upcoming = cast(DeliveringConsumer, self.faust.consumer).next_offset(tp)
        if upcoming is None:  # nothing read or sought yet
            upcoming = self.positions.get((tp.topic, tp.partition), -1) + 1
        return upcoming

    def owned_partitions(self) -> list[int]:
        """The lead partitions this worker owns (actively) in the current assignment."""
        first_input = self.settings.input_topics[0]
        return sorted(
            tp.partition for tp in self.faust.assignor.assigned_actives() if tp.topic == first_input
        )

    def clear_indexes(self) -> None:
        self.crossings.clear()
        self.hot.clear()
        self.waiting.clear()
        self.outdated.clear()

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
        if self.transaction is None:
            kafka = self.faust.producer._ensure_producer()  # type: ignore[attr-defined]
        else:
            kafka = await self.transaction.producer()
        sending = await kafka.send(
            topic.get_topic_name(), value, key=key, partition=partition, headers=headers
        )
        self.store.sent(sending)


def create_app(settings: Settings, rules: Rules) -> LeadscoreApp:
    """The worker's Faust app."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=settings.faust_broker_credentials(),
        store="rocksdb://",  # rocksdict underneath
        datadir=str(settings.data_dir),
        autodiscover=False,
        # Exactly once is the worker's own transaction (streams.transactions), not Faust's.
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_commit_interval=settings.commit_interval,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        # The address other workers use to reach this one (table routing): the
        # loopback when bound to it, else this host's name.
        web_host=settings.web_bind
        if settings.web_bind.startswith("127.")
        else socket.gethostname(),
        # A few ms of linger make batches of the records an agent sends one by one.
        producer_linger=PRODUCER_LINGER_S,
        producer_max_request_size=MAX_RECORD_BYTES,
        Monitor=LeanMonitor,
        # Exactly once, the changelogs are written in transactions (streams.transactions).
        TableManager=TransactionalTableManager
        if settings.processing_guarantee == "exactly_once"
        else "faust.tables:TableManager",
        producer_request_timeout=settings.producer_request_timeout,
    )
    if settings.broker_kind == "embedded":
        tune_for_embedded_broker(app)  # Tansu's fetch waits and end offsets
    use_delivering_consumer(app)
    use_topic_tracking_producer(app)
    repartition = _raw_topic(app, repartition_topic(settings))
    funnel_channel = _raw_topic(app, funnel_topic(settings))
    leadscore = LeadscoreApp(
        settings=settings,
        rules=rules,
        faust=app,
        events=_raw_topic(app, *settings.input_topics, repartition.get_topic_name()),
        repartition=repartition,
        transitions=_raw_topic(app, settings.transitions_topic),
        alerts=_raw_topic(app, settings.alerts_topic),
        scores=_raw_topic(app, settings.scores_topic),
        dead_letters=_raw_topic(app, settings.dlq_topic),
        deletions=_raw_topic(app, settings.deletions_topic),
        merges=_raw_topic(app, settings.merges_topic),
        leads=_raw_table(app, "leads", settings),
        recent=_raw_table(app, "recent-transitions", settings),
        funnel_topic=funnel_channel,
        transitions_in=_raw_topic(app, settings.transitions_topic),
        mql_since=_raw_table(app, "mql-since", settings),
        funnel=_raw_table(app, "funnel", settings),
        identities=_raw_table(app, "identities", settings),
    )
    store = leadscore.store = LeadStore(leadscore)
    exactly_once = settings.processing_guarantee == "exactly_once"
    if exactly_once:
        leadscore.transaction = store.transaction = Transaction(
            app.producer, settings.app_id, settings.data_dir
        )

    async def before_commit(offsets: Mapping[TP, int]) -> None:
        # No offset is committed before the state it led to is durable; with exactly_once,
        # the offsets are committed with it, in one transaction.
        if exactly_once:
            await store.commit(offsets)
        else:
            await store.flush()
        leadscore.metrics.committing(offsets, store.durable)

    use_before_commit(app, before_commit, commits=exactly_once)
    # Imported here: each module registers its part on the app it is given.
    from streams import agents, funnel, sweep, timers, views

    agents.register(leadscore)
    funnel.register(leadscore)
    timers.register(leadscore)
    sweep.register(leadscore)
    views.register(leadscore)
    if settings.webhook_url:
        from streams.webhooks import register as register_webhooks

        register_webhooks(
            leadscore,
            settings.webhook_url.get_secret_value(),
            attempts=settings.webhook_attempts,
            dlq_topic=settings.webhook_dlq_topic,
        )
    return leadscore


def _raw_topic(app: faust.App, *names: str) -> TopicT:
    """Records are bytes in and out: leadscore parses and encodes them itself."""
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def _raw_table(app: faust.App, name: str, settings: Settings) -> TableT[bytes, bytes]:
    """One of `streams.topics.TABLES`, whose changelog `ensure_topics` creates."""
    partitions = TABLES[name] or settings.partitions
    return app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)
