"""The consumer's inline delivery: a coroutine started by hand and finished in a task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.consumer import _resume


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
