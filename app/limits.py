"""Bounds on what a client can make the proxy hold: generations in flight and waiting, body size and body time."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InvalidRequest, Overloaded, PayloadTooLarge, RequestTimeout
from app.responses import json_response
from otel.metrics import record_error

__all__ = ["BodyLimitMiddleware", "Limiter", "check_inputs"]


def check_inputs(messages: int, images: list[str], max_messages: int, max_image_bytes: int) -> None:
    """Refuse conversations and images bigger than configured, before any work is done for them."""
    if messages > max_messages:
        raise InvalidRequest(f"too many messages: {messages} (the limit is {max_messages})")
    for image in images:
        size = len(image) * 3 // 4 - image[-2:].count("=")  # what the base64 decodes to
        if size > max_image_bytes:
            raise PayloadTooLarge(f"image too large: {size} bytes (the limit is {max_image_bytes})")


class Limiter:
    """At most ``limit`` generations at once; up to ``max_queue`` more wait, each at most ``timeout`` seconds.

    Beyond either bound a request gets Ollama's 503 answer with ``Retry-After``: never an unbounded queue.
    """

    def __init__(self, limit: int, max_queue: int, timeout: float) -> None:
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None
        self._max_queue, self._timeout = max_queue, timeout
        self.waiting = 0

    async def acquire(self) -> None:
        if self._slots is None:
            return
        if not self._slots.locked():  # a free slot is taken at once: no timer to arm
            await self._slots.acquire()
            return
        if self.waiting >= self._max_queue:
            raise Overloaded()
        self.waiting += 1
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise Overloaded() from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: at once from ``Content-Length``, or as soon as a chunked body exceeds it;
    408 when the body stops arriving for ``read_timeout`` seconds (nginx's ``client_body_timeout``).

    Only the body's reads are timed: once it is complete, ``receive`` waits for a disconnect, as long as the answer
    streams (a server-wide read timeout would cut long generations).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float) -> None:
        self.app, self._max, self._read_timeout = app, max_bytes, read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        declares_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        received, complete = 0, False

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and declares_body and not complete:
                # An answer before the whole body was read (an error): the client must not send its next request
                # on this connection, which the server closes rather than read a body nobody wants.
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        if length is not None and length.isdigit() and int(length) > self._max:
            record_error(scope, PayloadTooLarge.error_type)
            await json_response(self._error(), 413)(scope, receive, closing)
            return

        async def limited() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self._read_timeout):
                    message = await receive()
            except TimeoutError:
                silence = f"{self._read_timeout:g} s"
                raise RequestTimeout(f"the request body stopped arriving (nothing for {silence})") from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            received += len(message.get("body", b""))
            if received > self._max:
                raise PayloadTooLarge(self._error()["error"])
            return message

        await self.app(scope, limited, closing)

    def _error(self) -> dict[str, str]:
        return {"error": f"request body too large (the limit is {self._max} bytes)"}
