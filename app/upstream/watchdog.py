"""One timer for a whole stream: each read only moves its expiry, instead of entering a timeout of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Expired", "Watchdog"]

T = TypeVar("T")


class Expired(Exception):
    """A read outlasted its limit (its own type, so that a timeout raised by the read itself is not taken for it)."""


class Watchdog:
    """Cancels the reading task when a read outlasts its limit.

    Reads go through ``read``, which arms the timer before and disarms it after: between reads the stream's
    consumer is writing to its client, which the timer must never interrupt. The timer is re-armed lazily (a
    later expiry waits for the current one to come due), and it cancels whichever task is reading at that
    moment: a stream's first read is awaited by the route's task and the rest by the response's, so the task
    is taken at each read.
    """

    __slots__ = ("_loop", "_handle", "_due", "_expires", "_task", "_cancelling", "_fired")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the handle runs
        self._expires: float | None = None  # None: no read in progress
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._fired = False

    async def read(self, awaitable: Awaitable[T], seconds: float) -> T:
        """Await one read, for at most ``seconds``; raises ``Expired`` after that."""
        self._arm(seconds)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._timed_out():
                raise Expired() from None
            raise
        finally:
            self._disarm()

    def _arm(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None, "a watchdog guards a task's reads"
        self._task, self._cancelling, self._fired = task, task.cancelling(), False
        self._expires = expires = self._loop.time() + seconds
        if self._handle is None or expires < self._due:
            if self._handle is not None:
                self._handle.cancel()
            self._due, self._handle = expires, self._loop.call_at(expires, self._check)

    def _disarm(self) -> None:
        self._expires = None

    def _timed_out(self) -> bool:
        """After a read raised ``CancelledError``: was it this watchdog's (then the cancellation is taken back)?"""
        if not self._fired or self._task is None:
            return False
        self._fired = False
        return self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        if self._expires is None or self._task is None:
            return
        if self._loop.time() < self._expires:
            self._due, self._handle = self._expires, self._loop.call_at(self._expires, self._check)
            return
        self._fired = True
        self._task.cancel()
