"""How many generations run at once, and how many may wait: one mechanism for the proxy and the engine."""

from __future__ import annotations

import asyncio

from app.errors import Overloaded, QueueTimeout

__all__ = ["Limiter"]


class Limiter:
    """At most ``limit`` generations at once (0: no limit); up to ``max_queue`` more wait, each at most ``timeout``
    seconds (``None``: as long as it takes).

    A full queue gets Ollama's 503 answer, a wait that ran out its own 503 (``queue_timeout``), both with
    ``Retry-After``: never an unbounded queue. The proxy
    bounds its generations with one, and the in-process engine its sequences with another.
    """

    def __init__(self, limit: int, max_queue: int, timeout: float | None) -> None:
        self.limit = limit  # 0: none
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self._max_queue, self._timeout = max_queue, timeout
        self.waiting = 0
        self.held = 0  # slots taken and not yet given back

    async def acquire(self) -> None:
        if self._slots is None:
            return
        if not self._slots.locked():  # a free slot is taken at once: no timer to arm
            await self._slots.acquire()
            self.held += 1
            return
        if self.waiting >= self._max_queue:
            raise Overloaded()
        self.waiting += 1
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
            self.held += 1
        except TimeoutError:
            raise QueueTimeout(self._timeout or 0.0) from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        if self._slots is not None:
            self.held -= 1
            self._slots.release()
