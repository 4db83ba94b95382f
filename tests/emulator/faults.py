"""What a `Reply`'s faults are made of: the reset a stream raises to drop its connection, a first byte held back,
and a whole answer whose body is malformed, stalls after the headers, or is cut off. A wait ends at once when the
client leaves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.emulator.replies import Reply

if TYPE_CHECKING:
    from tests.emulator.server import Emulator


class _Reset(Exception):
    """Raised inside a stream to drop the connection instead of finishing the body."""


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _slept(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return True


async def _first_wins(work: Awaitable[bool], watch: Awaitable[None]) -> bool:
    """Run `work` until done or until `watch` finishes first; False when work was abandoned."""
    work_task = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(watch)
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        work_task.cancel()
        watch_task.cancel()
        await asyncio.gather(work_task, watch_task, return_exceptions=True)
    return False if work_task.cancelled() else work_task.result()


class _Held:
    """Sends nothing for `delay` seconds (the time to first byte), then answers with `app`."""

    def __init__(self, emulator: Emulator, app: ASGIApp, delay: float) -> None:
        self._emulator = emulator
        self._app = app
        self._delay = delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await _first_wins(_slept(self._delay), _disconnected(receive)):
            self._emulator.disconnects.append(time.monotonic())
            return
        await self._app(scope, receive, send)


class _BrokenBody:
    """A non-streaming answer with a body fault: malformed, stalled after the headers, or cut off."""

    def __init__(self, emulator: Emulator, response: Response, reply: Reply) -> None:
        self._emulator = emulator
        if reply.malformed_after is not None:
            response = Response(b"{not json", media_type="application/json")
        self._response = response
        self._reply = reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response, reply = self._response, self._reply
        start = {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
        await send(start)
        if reply.stall_after is not None:
            if not await _first_wins(_slept(reply.stall_for), _disconnected(receive)):
                self._emulator.disconnects.append(time.monotonic())
                return
        if reply.reset_after is not None:
            return  # body unfinished: Hypercorn drops the connection
        await send({"type": "http.response.body", "body": response.body, "more_body": False})
