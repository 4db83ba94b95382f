"""The stream's one timer: it cancels a read that outlasts its limit, and nothing else."""

from __future__ import annotations

import asyncio

import pytest

from app.upstream.watchdog import Expired, Watchdog


async def _read(watchdog: Watchdog, limit: float, takes: float) -> str:
    try:
        return await watchdog.read(asyncio.sleep(takes, "read"), limit)
    except Expired:
        return "timed out"


def test_a_read_that_outlasts_its_limit_is_cancelled_and_others_are_not() -> None:
    async def main() -> list[str]:
        watchdog = Watchdog()
        results = [await _read(watchdog, 0.2, 0.01), await _read(watchdog, 0.2, 0.01)]
        await asyncio.sleep(0.3)  # between reads (the consumer writing): never interrupted
        results.append(await _read(watchdog, 0.05, 0.5))  # shorter than the timer already set: re-armed
        results.append(await _read(watchdog, 0.2, 0.01))
        watchdog.close()
        return results

    assert asyncio.run(main()) == ["read", "read", "timed out", "read"]


def test_the_read_of_another_task_is_the_one_cancelled() -> None:
    """A stream's first read runs in the route's task, the others in the response's."""

    async def main() -> list[str]:
        watchdog = Watchdog()
        first = await _read(watchdog, 0.2, 0.01)
        # asyncio.wait, unlike awaiting the task, would not pass a cancellation of this task on to it.
        later = asyncio.create_task(_read(watchdog, 0.05, 0.5))
        await asyncio.wait({later})
        watchdog.close()
        return [first, later.result()]

    assert asyncio.run(main()) == ["read", "timed out"]


def test_a_cancellation_from_elsewhere_is_not_taken_for_a_timeout() -> None:
    async def main() -> None:
        watchdog = Watchdog()
        task = asyncio.create_task(_read(watchdog, 5.0, 5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        watchdog.close()

    asyncio.run(main())
