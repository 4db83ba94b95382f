"""Hypercorn with one fix: a keep-alive connection that the client closes while idle is closed at once.

Hypercorn 0.18's h11 protocol ignores end-of-file on an idle, recycled connection (it only closes an open stream),
so the socket waits in CLOSE-WAIT until ``keep_alive_timeout`` ends the idle timer: a thousand short connections
held a thousand descriptors for the whole timeout and locked every client out. ``ClosingTCPServer`` ends the idle
timer at end-of-file too. Hypercorn offers no hook for its connection class, so ``install()`` replaces the name
its asyncio runner looks up for each new connection; the serve command and each worker process call it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypercorn.asyncio.run
from hypercorn.asyncio.tcp_server import TCPServer

__all__ = ["ClosingTCPServer", "install"]


class ClosingTCPServer(TCPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._eof = asyncio.Event()

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            self._eof.set()

    async def _idle_timeout(self) -> None:
        # Stock Hypercorn waits for shutdown or the keep-alive timeout; the client's end-of-file ends the wait too.
        # A stream still running when the client left restarts this timer when it ends, and finds the flag set.
        waits = [asyncio.ensure_future(self.context.terminated.wait()), asyncio.ensure_future(self._eof.wait())]
        try:
            await asyncio.wait(waits, timeout=self.config.keep_alive_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        await asyncio.shield(self._initiate_server_close())


def install() -> None:
    hypercorn.asyncio.run.TCPServer = ClosingTCPServer  # type: ignore[attr-defined]
