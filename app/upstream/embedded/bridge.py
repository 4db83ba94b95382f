"""A blocking ``mistralrs`` streamer, iterated in its own thread, handed to the event loop chunk by chunk.

The streamer's ``next()`` blocks until the engine produces a token but releases the GIL, so one producer
thread per stream keeps the event loop free. Hand-over is bounded (credits): a slow client slows its own
producer, never memory. ``aclose`` tells the producer to stop; it notices at the next token (a blocked
``next()`` cannot be interrupted) and drops the streamer, which cancels the sequence in the engine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from app.errors import ProxyError
from app.upstream.timeouts import StreamTimeouts
from app.upstream.watchdog import Expired, Watchdog

__all__ = ["EngineStream"]

_CREDITS = 64
_POLL = 0.05  # how often a producer waiting for credit checks whether it should stop


class EngineStream:
    """An engine stream as a ``PayloadStream``: iterate for bursts of JSON payloads, ``aclose`` to abandon it.
    ``on_first`` is called (in the producer thread) at each chunk the engine makes, ``on_exit`` once it is done.

    A burst is what the producer has handed over by the time the consumer asks, at least one payload.
    """

    def __init__(
        self,
        chunks: Iterator[Any],
        encode: Callable[[Any], bytes],
        map_error: Callable[[BaseException], ProxyError],
        on_exit: Callable[[], None],
        timeouts: StreamTimeouts,
        deadline: float | None,
        on_first: Callable[[], None] = lambda: None,
    ) -> None:
        self._timeouts, self._deadline, self._started = timeouts, deadline, False
        self._loop = asyncio.get_running_loop()
        self._watchdog = Watchdog()  # one timer per stream, not a timeout per read
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._credits = threading.Semaphore(_CREDITS)
        self._stop = threading.Event()
        self._encode, self._map_error, self._on_exit, self._on_first = encode, map_error, on_exit, on_first
        self._pending: BaseException | None = None  # an end or error met behind a burst, raised next time
        self._thread = threading.Thread(target=self._produce, args=(chunks,), name="mistralrs-stream", daemon=True)
        self._thread.start()

    def __aiter__(self) -> EngineStream:
        return self

    async def __anext__(self) -> list[bytes]:
        if self._pending is not None:
            raise self._pending
        wait, silence = self._timeouts.wait(self._started, self._deadline)
        try:
            item = await self._watchdog.read(self._queue.get(), wait)
        except Expired:
            await self.aclose()
            raise self._timeouts.error(silence) from None
        self._started = True
        burst: list[bytes] = []
        while True:
            self._credits.release()
            kind, value = item
            if kind != "chunk":
                self._watchdog.close()
                ending: BaseException = StopAsyncIteration() if kind == "end" else value
                if not burst:
                    raise ending
                self._pending = ending
                return burst
            burst.append(value)
            if self._queue.empty():
                return burst
            item = self._queue.get_nowait()

    async def aclose(self) -> None:
        self._stop.set()
        self._watchdog.close()

    def _produce(self, chunks: Iterator[Any]) -> None:
        ending: tuple[str, Any] = ("end", None)
        try:
            for chunk in chunks:
                self._on_first()  # the prompt has been read (called at every chunk: it acts once)
                if not self._hand_over("chunk", self._encode(chunk)):
                    return  # abandoned: returning drops the streamer, and the engine cancels the sequence
        except BaseException as exc:  # mistralrs panics are BaseExceptions
            ending = ("error", self._map_error(exc))
        finally:
            self._on_exit()
        # after on_exit, so that whoever sees the end finds the engine's span ended and its slot free
        self._hand_over(*ending)

    def _hand_over(self, kind: str, value: Any) -> bool:
        while not self._credits.acquire(timeout=_POLL):
            if self._stop.is_set():
                return False
        if self._stop.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone (shutdown)
            return False
        return True
