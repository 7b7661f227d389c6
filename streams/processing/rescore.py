"""`leadscore rescore`: the retained input scored again under new rules, beside the worker.

A re-score is a worker of its own. Its consumer group (the app id suffixed with the
new rules' version) reads the input topics from their start, with tables and
changelogs of its own, and writes into output topics suffixed the same way; the
running worker, in its own group, is not disturbed. Once it has caught up, it
goes on scoring new input, and downstream can move to its topics (the
switch-over, in the README).

It needs the input from its start: a partition whose earliest offset is not 0 has
lost history to retention, and its re-score would differ from what the new rules
make of the full history, so it is refused.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from scoring import Rules
from scoring.errors import LeadscoreError
from streams.context import LeadscoreApp
from streams.settings import OUTPUT_TOPICS, Settings, env_var

log = logging.getLogger(__name__)

# The output topics a re-score writes under its own names.
OUTPUTS = (*OUTPUT_TOPICS, "webhook_dlq_topic")
PROGRESS_INTERVAL_S = 5.0


class RescoreRefused(LeadscoreError):
    """A re-score that cannot give what the new rules make of the full history."""


def version_tag(version: str) -> str:
    """The rules version as a topic-name suffix: `2026-12 (draft)` -> `2026-12-draft`."""
    tag = re.sub(r"[^a-zA-Z0-9._-]+", "-", version).strip("-.")
    if not tag:
        raise RescoreRefused(
            f"the rules version {version!r} names no topic: give the new rules a version "
            "of letters, digits, '.', '_' or '-' (their output topics are named by it)"
        )
    return tag


def rescore_settings(settings: Settings, rules: Rules, in_use: Rules) -> Settings:
    """The settings of a re-score of `settings`' input under `rules`: its own group, data
    directory and output topics, each named by the rules version. It sends no webhooks:
    its alerts of the past go to its own alerts topic."""
    if rules.version == in_use.version:
        raise RescoreRefused(
            f"the new rules have the version of the rules in use ({rules.version!r}): give "
            "them a version of their own (their output topics are named by it)"
        )
    tag = version_tag(rules.version)
    update: dict[str, object] = {name: f"{getattr(settings, name)}-{tag}" for name in OUTPUTS}
    update |= {
        "app_id": f"{settings.app_id}-{tag}",
        "data_dir": settings.data_dir / f"rescore-{tag}",
        "webhook_url": None,
    }
    return settings.model_copy(update=update)


def as_worker(settings: Settings) -> str:
    """The command that runs a re-score as `leadscore worker` (after the switch-over): the
    same group, state and topics, its offsets where the re-score left them."""
    names = ["app_id", *OUTPUTS, "data_dir", "rules"]
    pairs = [f"{env_var(name)}={getattr(settings, name)}" for name in names]
    return " ".join([*pairs, "leadscore worker"])


@dataclass(frozen=True)
class InputAtStart:
    """The input partitions as the re-score found them: (topic, partition) -> offsets."""

    earliest: dict[tuple[str, int], int]
    end: dict[tuple[str, int], int]
    resumed: bool  # the re-score's group had committed offsets: a re-score started before

    @property
    def records(self) -> int:
        return sum(self.end[tp] - self.earliest[tp] for tp in self.end)


def input_at_start(settings: Settings) -> InputAtStart:
    """The input's earliest and end offsets, and whether the re-score's group (from
    `rescore_settings`) has begun before; refused when history was deleted."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **settings.kafka_python_config(), group_id=settings.app_id, enable_auto_commit=False
    )
    try:
        tps = [
            TopicPartition(topic, partition)
            for topic in settings.input_topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        earliest = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        resumed = any(consumer.committed(tp) is not None for tp in tps)
    finally:
        consumer.close()
    found = InputAtStart(
        earliest={(tp.topic, tp.partition): offset for tp, offset in earliest.items()},
        end={(tp.topic, tp.partition): offset for tp, offset in end.items()},
        resumed=resumed,
    )
    lost = {tp: offset for tp, offset in found.earliest.items() if offset > 0}
    if lost and not resumed:
        where = ", ".join(f"{topic}[{partition}] from {offset}" for (topic, partition), offset in
                          sorted(lost.items()))  # fmt: skip
        raise RescoreRefused(
            f"cannot re-score: the input's history was deleted (its partitions begin at "
            f"offsets past 0: {where}). A re-score replays the input from its start; keep "
            "the input topics with retention.ms=-1 (or tiered storage) to re-score them. "
            "`leadscore whatif` over an export of the history shows what the new rules do."
        )
    return found


def register_progress(app: LeadscoreApp, start: InputAtStart) -> None:
    """Every PROGRESS_INTERVAL_S, how much of the input present at the start the re-score
    has handled; once, when it has caught up, what the switch-over is."""
    caught_up = False

    @app.faust.timer(interval=PROGRESS_INTERVAL_S)
    async def progress() -> None:
        nonlocal caught_up
        if caught_up or not app.live.ready:
            return
        owned = set(app.owned_partitions())
        tps = [tp for tp in start.end if tp[1] in owned]
        total = sum(start.end[tp] - start.earliest[tp] for tp in tps)
        done = sum(
            max(0, min(app.live.positions.get(tp, -1) + 1, start.end[tp]) - start.earliest[tp])
            for tp in tps
        )
        if done < total:
            log.info(
                "rescore under rules %s: %d of %d input records (%.0f%%)",
                app.rules.version,
                done,
                total,
                100 * done / total,
            )
            return
        caught_up = True
        settings = app.settings
        log.info(
            "rescore under rules %s caught up with the input (%d records of its partitions "
            "at its start); it goes on with new input. Switch-over: move downstream to %s, "
            "%s and %s; stop the old worker; then run this re-score as the worker: %s",
            app.rules.version,
            total,
            settings.transitions_topic,
            settings.alerts_topic,
            settings.scores_topic,
            as_worker(settings),
        )
