"""One timer for a whole stream: each read only moves its expiry, instead of entering a timeout of its own."""

from __future__ import annotations

import asyncio

__all__ = ["Watchdog"]


class Watchdog:
    """Cancels the reading task when a read outlasts its limit.

    ``arm`` before a read, ``disarm`` after it: between reads the stream's consumer is writing to its client,
    which the timer must never interrupt. The timer is re-armed lazily (a later expiry waits for the current one
    to come due), and it cancels whichever task is reading at that moment: a stream's first read is awaited by
    the route's task and the rest by the response's, so the task is taken at each ``arm``.
    """

    __slots__ = ("_loop", "_handle", "_due", "_expires", "_task", "_cancelling", "fired")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the handle runs
        self._expires: float | None = None  # None: no read in progress
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.fired = False

    def arm(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None, "a watchdog guards a task's reads"
        self._task, self._cancelling, self.fired = task, task.cancelling(), False
        self._expires = expires = self._loop.time() + seconds
        if self._handle is None or expires < self._due:
            if self._handle is not None:
                self._handle.cancel()
            self._due, self._handle = expires, self._loop.call_at(expires, self._check)

    def disarm(self) -> None:
        self._expires = None

    def timed_out(self) -> bool:
        """After a read raised ``CancelledError``: was it this watchdog's (then the cancellation is taken back)?"""
        if not self.fired or self._task is None:
            return False
        self.fired = False
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
        self.fired = True
        self._task.cancel()
