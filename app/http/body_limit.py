"""Bounds on a request body: its size, how many items it holds, and how long it may take to arrive."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, RequestTimeout
from app.http.errors import render_error

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: at once from ``Content-Length``, or as soon as a chunked body exceeds it;
    413 too for a body of more than ``max_items`` JSON values, counted by its commas as it arrives (an upper bound:
    commas in strings count too), so that no decoder ever builds a list of millions of tiny values; 408 when the
    body stops arriving for ``read_timeout`` seconds (nginx's ``client_body_timeout``).

    Only the body's reads are timed: once it is complete, ``receive`` waits for a disconnect, as long as the answer
    streams (a server-wide read timeout would cut long generations).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float, max_items: int) -> None:
        self.app, self._max, self._read_timeout, self._max_items = app, max_bytes, read_timeout, max_items

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        declares_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        # Both framings at once (RFC 9112 6.1): the connection is closed after the answer, for a front end that read
        # the body by Content-Length would take the rest of it for the next request (request smuggling).
        ambiguous = length is not None and b"transfer-encoding" in headers
        received, items, complete = 0, 0, False

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and ((declares_body and not complete) or ambiguous):
                # An answer before the whole body was read (an error): the client must not send its next request
                # on this connection, which the server closes rather than read a body nobody wants.
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        if length is not None and length.isdigit() and int(length) > self._max:
            await render_error(scope, PayloadTooLarge(self._message()))(scope, receive, closing)
            return

        async def limited() -> Message:
            nonlocal received, items, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self._read_timeout):
                    message = await receive()
            except TimeoutError:
                silence = f"{self._read_timeout:g} s"
                raise RequestTimeout(f"the request body stopped arriving (nothing for {silence})") from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            chunk = message.get("body", b"")
            received, items = received + len(chunk), items + chunk.count(b",")
            if received > self._max:
                raise PayloadTooLarge(self._message())
            if items >= self._max_items:
                limit = self._max_items
                raise PayloadTooLarge(f"request body holds too many items: over {limit} (the limit is {limit})")
            return message

        await self.app(scope, limited, closing)

    def _message(self) -> str:
        return f"request body too large (the limit is {self._max} bytes)"
