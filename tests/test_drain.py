"""Graceful shutdown: streams that end within the grace period are left alone; the rest are cancelled."""

from __future__ import annotations

import asyncio

from app.drain import Drain


async def _stream(drain: Drain, seconds: float, outcome: list[str]) -> None:
    with drain.track():
        try:
            await asyncio.sleep(seconds)
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise


def test_streams_within_the_grace_period_finish() -> None:
    async def scenario() -> tuple[list[str], bool]:
        drain, outcome = Drain(), []
        task = asyncio.create_task(_stream(drain, 0.01, outcome))
        await asyncio.sleep(0)
        await drain.shutdown(grace=5.0)
        await task
        return outcome, drain.expired

    assert asyncio.run(scenario()) == (["finished"], False)


def test_streams_past_the_grace_period_are_cancelled_and_awaited() -> None:
    async def scenario() -> tuple[list[str], bool]:
        drain, outcome = Drain(), []
        tasks = [asyncio.create_task(_stream(drain, seconds, outcome)) for seconds in (0.01, 60.0)]
        await asyncio.sleep(0)
        await drain.shutdown(grace=0.1)  # returns once the cancelled stream has ended
        await asyncio.gather(*tasks, return_exceptions=True)
        return outcome, drain.expired

    assert asyncio.run(scenario()) == (["finished", "cancelled"], True)


def test_with_no_streams_shutdown_is_immediate() -> None:
    drain = Drain()
    asyncio.run(drain.shutdown(grace=60.0))
    assert drain.expired is False
