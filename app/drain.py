"""Graceful shutdown: answers in flight may finish within a grace period; then each ends with an error (a stream's
last line, or a whole answer's 503)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Drain"]

_log = logging.getLogger(__name__)


class Drain:
    def __init__(self) -> None:
        self._streams: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.expired = False

    @contextmanager
    def track(self) -> Iterator[None]:
        """Register the task writing an answer, so that shutdown can end it when the grace period is over."""
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._streams.discard(task)
            if not self._streams:
                self._idle.set()

    async def shutdown(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for answers to finish; cancel the rest, which then end with an error."""
        if self._streams:
            _log.info("waiting up to %g s for %d streams to finish", grace, len(self._streams))
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            self.expired = True
            _log.warning("grace period over: ending %d streams", len(self._streams))
            for task in list(self._streams):
                task.cancel("shutting down")
            await self._idle.wait()
