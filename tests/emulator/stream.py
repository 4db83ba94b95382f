"""A streamed answer as mistral.rs sends it: `data:` events, keep-alive comments, `[DONE]`, and the points where a
`Reply`'s stall, reset or malformed event strikes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from tests.emulator.faults import _disconnected, _first_wins, _Reset
from tests.emulator.replies import Reply
from tests.emulator.wire import _dumps

if TYPE_CHECKING:
    from tests.emulator.server import Emulator

KEEPALIVE = b":\n\n"
MALFORMED = b"data: {not json\n\n"
DONE = b"data: [DONE]\n\n"
STALL_KEEPALIVE_INTERVAL = 0.1  # seconds between keep-alive comments while a `stall_keepalive` stream stalls


def _clip(after: int | None, events: int) -> int | None:
    return None if after is None else min(max(0, after), events)


async def _events(emulator: Emulator, payloads: list[dict[str, Any]], reply: Reply) -> AsyncIterator[bytes]:
    if not reply.burst:
        async for event in _sse(emulator, payloads, reply):
            yield event
        return
    events: list[bytes] = []
    try:
        async for event in _sse(emulator, payloads, reply):
            events.append(event)
    except _Reset:  # what came before the reset still goes out
        yield b"".join(events)
        raise
    yield b"".join(events)


async def _sse(emulator: Emulator, payloads: list[dict[str, Any]], reply: Reply) -> AsyncIterator[bytes]:
    stall_at = _clip(reply.stall_after, len(payloads))
    reset_at = _clip(reply.reset_after, len(payloads))
    malformed_at = _clip(reply.malformed_after, len(payloads))
    for sent in range(len(payloads) + 1):
        if sent == stall_at:
            # quiet for stall_for seconds; with stall_keepalive a comment every interval meanwhile
            deadline = time.monotonic() + reply.stall_for
            step = STALL_KEEPALIVE_INTERVAL if reply.stall_keepalive else reply.stall_for
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(min(step, left))
                if reply.stall_keepalive and time.monotonic() < deadline:
                    yield KEEPALIVE
        if sent == reset_at:
            raise _Reset
        if sent == malformed_at:
            yield MALFORMED
            break
        if sent == len(payloads):
            break
        number = sent + 1
        if number > 1 and reply.delay:
            await asyncio.sleep(reply.delay)
        if emulator.keepalive_every and number % emulator.keepalive_every == 0:
            yield KEEPALIVE
        yield b"data: " + _dumps(payloads[sent]) + b"\n\n"
        await asyncio.sleep(0)
    yield DONE


class _EventStream:
    """`text/event-stream` response that notices an abandoned stream while it sleeps."""

    def __init__(self, emulator: Emulator, events: AsyncIterator[bytes]) -> None:
        self._emulator = emulator
        self._events = events
        self._active = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self._emulator.active_streams += 1
        self._active = True
        try:
            if not await _first_wins(self._pump(send), _disconnected(receive)):
                self._emulator.disconnects.append(time.monotonic())
        finally:
            self._release()

    def _release(self) -> None:
        if self._active:
            self._active = False
            self._emulator.active_streams -= 1

    async def _pump(self, send: Send) -> bool:
        try:
            async for event in self._events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            # released before the body ends, so a client that saw the end sees the count drop
            self._release()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except _Reset:
            # The app returns with the body unfinished: Hypercorn then closes the connection without
            # the terminating chunk, so the client sees an incomplete chunked body.
            return True
        except OSError:
            return False
        return True
