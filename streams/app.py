"""The composition root: the worker's Faust app, its topics and tables, and each part
registered on them."""

from __future__ import annotations

import socket
from collections.abc import Mapping

import faust
from faust.types import TP, TableT, TopicT

from scoring import Rules
from streams.context import PRODUCER_LINGER_S, LeadscoreApp
from streams.kafka.topics import MAX_RECORD_BYTES, TABLES, funnel_topic, repartition_topic
from streams.kafka.transactions import Transaction, TransactionalTableManager
from streams.kafka.transport import use_before_commit
from streams.metrics import LeanMonitor
from streams.processing import decay, funnel, lifecycle, scorer, sweep
from streams.settings import Settings
from streams.state.store import LeadStore
from streams.web import views


def create_app(settings: Settings, rules: Rules) -> LeadscoreApp:
    """The worker's Faust app."""
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker,  # a leadscore transport (streams.kafka.transport)
        broker_credentials=settings.faust_broker_credentials(),
        store="leadscore-rocksdb://",  # streams.state.rocksdb: rocksdict underneath
        datadir=str(settings.data_dir),
        autodiscover=False,
        # Exactly once is the worker's own transaction (streams.kafka.transactions), not Faust's.
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
        # Exactly once, the changelogs are written in transactions (streams.kafka.transactions).
        TableManager=TransactionalTableManager
        if settings.processing_guarantee == "exactly_once"
        else "faust.tables:TableManager",
        producer_request_timeout=settings.producer_request_timeout,
    )
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
        leadscore.live.metrics.committing(offsets, store.durable)

    use_before_commit(app, before_commit, commits=exactly_once)
    scorer.register(leadscore)
    funnel.register(leadscore)
    decay.register(leadscore)
    lifecycle.register(leadscore)
    sweep.register(leadscore)
    views.register(leadscore)
    if settings.webhook_url:
        from streams.sinks.webhooks import register as register_webhooks

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
    """One of `streams.kafka.topics.TABLES`, whose changelog `ensure_topics` creates."""
    partitions = TABLES[name] or settings.partitions
    return app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)
