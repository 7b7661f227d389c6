"""The worker's consumer: its inline delivery (a coroutine started by hand and finished
in a task), and the intake's bookkeeping of which record comes next."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from streams.kafka.consumer import _resume
from streams.kafka.transport import use_intake


async def doubled(future: asyncio.Future[int]) -> int:
    return 2 * await future


def start(coro: Any) -> Any:
    """The first step of `coro`, as the consumer runs it inline: what it waits on."""
    return coro.send(None)


def test_a_delivery_that_waits_is_finished_by_a_task() -> None:
    async def main() -> int:
        future = asyncio.get_running_loop().create_future()
        coro = doubled(future)
        task = asyncio.ensure_future(_resume(coro, start(coro)))
        await asyncio.sleep(0)
        assert not task.done()
        future.set_result(21)
        return await task

    assert asyncio.run(main()) == 42


def test_a_delivery_that_yields_to_the_loop_goes_on() -> None:
    async def twice() -> str:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "done"

    async def main() -> str:
        coro = twice()
        return await asyncio.ensure_future(_resume(coro, start(coro)))

    assert asyncio.run(main()) == "done"


def test_cancelling_the_task_cancels_the_delivery() -> None:
    cleaned_up = []

    async def stuck(future: asyncio.Future[None]) -> None:
        try:
            await future
        finally:
            cleaned_up.append(True)

    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        coro = stuck(future)
        task = asyncio.ensure_future(_resume(coro, start(coro)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cleaned_up == [True]


def test_an_error_in_the_delivery_reaches_the_awaiter() -> None:
    async def fails(future: asyncio.Future[None]) -> None:
        await future
        raise ValueError("bad record")

    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        coro = fails(future)
        task = asyncio.ensure_future(_resume(coro, start(coro)))
        future.set_result(None)
        with pytest.raises(ValueError, match="bad record"):
            await task

    asyncio.run(main())


# --- The intake's offsets: which record comes next, whatever the fetch returns. ---------
# The consumer is Faust's, unstarted; its Kafka client (the consumer thread) is replaced
# by `Broker`, which answers with committed offsets and records the seeks asked of it.

TOPIC = "lead-events"
TP0 = TP(TOPIC, 0)


class Broker:
    """The consumer thread's part the intake talks to: seeks, assignment, committed."""

    def __init__(self, committed: int) -> None:
        self.committed = committed
        self.seeks: list[int] = []
        self.answer: asyncio.Event | None = None  # set: the seek to committed answers

    async def seek_to_committed(self) -> dict[TP, int]:
        if self.answer is not None:
            await self.answer.wait()
        return {TP0: self.committed}

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append(offset)

    def assignment(self) -> set[TP]:
        return {TP0}

    def highwater(self, tp: TP) -> int:
        return 1_000


def records(*offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", b"v", None, 1, 1, []) for offset in offsets
    ]


class Intake:
    """An unstarted worker consumer whose intake hands records to `handled`."""

    def __init__(self, committed: int) -> None:
        app = faust.App("intake-test", broker="leadscore://127.0.0.1:1", autodiscover=False)
        app.topics.add(app.topic(TOPIC))
        self.handled: list[int] = []

        async def handle(message: Any) -> None:
            self.handled.append(message.offset)

        use_intake(app, [TOPIC], handle)
        self.consumer: Any = app.consumer
        self.broker = Broker(committed)
        self.consumer._thread = self.broker
        self.generation = app.consumer_generation_id

    async def assigned(self) -> None:
        """What Faust does when the worker subscribes, and once an assignment's tables
        have recovered."""
        await self.consumer.app.topics._update_indices()
        await self.consumer.perform_seek()

    async def fetched(self, *offsets: int) -> None:
        handle = self.consumer.hooks.intake.handlers[TOPIC]
        await self.consumer._take(handle, TP0, records(*offsets), self.generation)

    def commit_offset(self) -> int | None:
        """The offset Faust would commit now."""
        return self.consumer._new_offset(TP0)  # type: ignore[no-any-return]

    async def fetched_while_seeking(self, *offsets: int) -> None:
        """Records fetched while Faust's seek to the committed offsets runs (it resumes
        the partitions before it seeks them, in the consumer thread)."""
        await self.consumer.app.topics._update_indices()
        self.broker.answer = asyncio.Event()
        seeking = asyncio.create_task(self.consumer.perform_seek())
        await asyncio.sleep(0)
        await self.fetched(*offsets)
        self.broker.answer.set()
        await seeking


def test_a_fetch_that_begins_past_the_committed_offset_is_read_again_from_it() -> None:
    # Faust's read offset after its seek is the committed offset itself, so a fetch that
    # began one record late showed no gap: the record was skipped and committed over.
    async def main() -> Intake:
        intake = Intake(committed=40)
        await intake.assigned()
        await intake.fetched(41, 42)
        assert intake.handled == [] and intake.broker.seeks == [40]
        await intake.fetched(40, 41, 42)
        return intake

    intake = asyncio.run(main())
    assert intake.handled == [40, 41, 42]
    assert intake.commit_offset() == 43


def test_a_gap_that_shows_again_after_reading_again_is_passed_over() -> None:
    # Transaction markers and aborted records leave offsets no consumer gets.
    async def main() -> Intake:
        intake = Intake(committed=40)
        await intake.assigned()
        await intake.fetched(40, 41, 44)
        assert intake.handled == [40, 41] and intake.broker.seeks == [42]
        await intake.fetched(44, 45)
        return intake

    intake = asyncio.run(main())
    assert intake.handled == [40, 41, 44, 45]
    assert intake.commit_offset() == 46


def test_a_gap_is_read_again_each_time_it_follows_progress() -> None:
    # A gap seen before is not taken for genuine once records were handled since.
    async def main() -> Intake:
        intake = Intake(committed=40)
        await intake.assigned()
        await intake.fetched(42)
        await intake.fetched(40)
        await intake.fetched(42)
        return intake

    intake = asyncio.run(main())
    assert intake.handled == [40]
    assert intake.broker.seeks == [40, 41]


def test_records_handled_already_in_this_assignment_are_not_handed_over_again() -> None:
    async def main() -> Intake:
        intake = Intake(committed=40)
        await intake.assigned()
        await intake.fetched(40, 41)
        await intake.fetched(40, 41, 42)
        return intake

    assert asyncio.run(main()).handled == [40, 41, 42]


def test_records_handed_over_while_the_seek_to_committed_runs_are_not_expected_again() -> None:
    # A fetch handed the partition's last records over while the seek ran,
    # and the intake, set back to the committed offset, took a partition with nothing
    # more to come for one behind its input: its decay checks waited for good.
    async def main() -> Intake:
        intake = Intake(committed=52)
        await intake.fetched_while_seeking(52, 53, 54)
        # Nothing more to come (fetched after the seek), or...
        assert intake.consumer.next_offset(TP0) == 55
        await intake.fetched(52, 53, 54, 55)  # ...fetched again from it: passed over
        return intake

    intake = asyncio.run(main())
    assert intake.handled == [52, 53, 54, 55]
    assert intake.consumer.next_offset(TP0) == 56
    assert intake.commit_offset() == 56


def test_a_gap_before_the_first_record_handed_while_the_seek_runs_is_committed_over() -> None:
    # The same race where the committed offset is a transaction marker: the records the
    # fetch handed over began past it, with nothing to compare them with, so no gap was
    # taken; Faust commits past offsets only once acked or known as a gap, and the
    # partition's commits stayed behind for good (the chaos suite, exactly once).
    async def main() -> Intake:
        intake = Intake(committed=111)
        await intake.fetched_while_seeking(113, 114, 115)
        assert intake.consumer.next_offset(TP0) == 111  # read again from it
        await intake.fetched(113, 114, 115, 116)  # the gap: read again once more
        assert intake.broker.seeks[-1] == 111
        await intake.fetched(113, 114, 115, 116)  # the same gap: passed over
        return intake

    intake = asyncio.run(main())
    assert intake.handled == [113, 114, 115, 116]  # each once
    assert intake.commit_offset() == 117
