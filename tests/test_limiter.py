"""The one limiter: slots taken at once while free, a bounded and timed queue beyond, Ollama's 503 past both."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import BUSY_MESSAGE, Overloaded, QueueTimeout
from app.limiter import Limiter


def test_free_slots_are_taken_at_once_then_the_queue_fills_then_503() -> None:
    async def scenario() -> list[str]:
        limiter = Limiter(1, 1, timeout=None)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        seen = [f"waiting {limiter.waiting}"]
        with pytest.raises(Overloaded) as refused:
            await limiter.acquire()
        seen.append(refused.value.message)
        limiter.release()
        await waiter
        seen.append(f"waiting {limiter.waiting}")
        return seen

    assert asyncio.run(scenario()) == ["waiting 1", BUSY_MESSAGE, "waiting 0"]


def test_a_wait_longer_than_the_timeout_is_its_own_503_with_retry_after() -> None:
    async def scenario() -> Overloaded:
        limiter = Limiter(1, 5, timeout=0.01)
        await limiter.acquire()
        with pytest.raises(Overloaded) as refused:
            await limiter.acquire()
        assert limiter.waiting == 0
        return refused.value

    refused = asyncio.run(scenario())
    # not Ollama's "maximum pending requests exceeded": one request was waiting, in a queue of five
    assert type(refused) is QueueTimeout
    assert (refused.status_code, refused.error_type, refused.headers) == (503, "queue_timeout", {"Retry-After": "1"})
    assert refused.message == "server busy, please try again.  no slot became free within 0.01 s"


def test_a_limit_of_zero_is_no_limit() -> None:
    async def scenario() -> int:
        limiter = Limiter(0, 0, timeout=0.01)
        for _ in range(1000):
            await limiter.acquire()
        return limiter.waiting

    assert asyncio.run(scenario()) == 0
