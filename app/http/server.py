"""Hypercorn with three fixes, each a small subclass of one of its classes.

- A keep-alive connection that the client closes while idle is closed at once. Hypercorn 0.18's h11 protocol
  ignores end-of-file on an idle, recycled connection (it only closes an open stream), so the socket waits in
  CLOSE-WAIT until ``keep_alive_timeout`` ends the idle timer: a thousand short connections held a thousand
  descriptors for the whole timeout and locked every client out. ``ClosingTCPServer`` ends the idle timer at
  end-of-file too.
- An HTTP/2 request whose method or path is not ASCII gets 400. Hypercorn decodes both as ASCII and raised on
  each such request, before authentication: no answer, and 6 KB of traceback in the log per request.
- A request whose HTTP/1.1 framing breaks after the app began (a bad chunk size) gets Hypercorn's 400, and the
  status is left in the request's scope (``FRAMING_ERROR``), so that it is counted as what the client was told,
  ``400``/``bad_framing``, not as a client that left.

Hypercorn offers no hook for these classes, so ``install()`` replaces the names its runner looks up; the serve
command and each worker process call it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.events
import hypercorn.asyncio.run
import hypercorn.protocol
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import HTTPStream

from otel.asgi import FRAMING_ERROR

__all__ = ["AsciiH2Protocol", "ClosingTCPServer", "FramingH11Protocol", "install"]


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


class AsciiH2Protocol(H2Protocol):
    async def _create_stream(self, request: h2.events.RequestReceived) -> None:
        if all(value.isascii() for name, value in request.headers if name in (b":method", b":path")):
            await super()._create_stream(request)
            return
        headers = [(b":status", b"400"), (b"content-length", b"0"), *self.config.response_headers("h2")]
        self.connection.send_headers(request.stream_id, headers, end_stream=True)
        await self._flush()


class FramingH11Protocol(H11Protocol):
    async def _send_error_response(self, status_code: int) -> None:
        # Called when h11 refuses what the client sent; a request already handed to the app learns its status.
        if isinstance(self.stream, HTTPStream) and hasattr(self.stream, "scope"):
            self.stream.scope["extensions"][FRAMING_ERROR] = {"status": status_code}
        await super()._send_error_response(status_code)


def install() -> None:
    hypercorn.asyncio.run.TCPServer = ClosingTCPServer  # type: ignore[attr-defined]
    hypercorn.protocol.H2Protocol = AsciiH2Protocol  # type: ignore[attr-defined]
    hypercorn.protocol.H11Protocol = FramingH11Protocol  # type: ignore[attr-defined]
