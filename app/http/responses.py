"""Response framing: Ollama JSON and NDJSON, OpenAI SSE, and what a stream writes when it fails after its first byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from app.drain import Drain
from app.errors import ProxyError, ShuttingDown
from app.http.errors import JSON_ENCODER, JSON_MEDIA_TYPE, anthropic_error, error_line, openai_error

__all__ = [
    "ClosingStreamingResponse",
    "JSON_MEDIA_TYPE",
    "NDJSON_MEDIA_TYPE",
    "SSE_MEDIA_TYPE",
    "OnError",
    "ended_by_shutdown",
    "json_response",
    "ndjson_lines",
    "ndjson_response",
    "sse_events",
    "sse_lines",
]

NDJSON_MEDIA_TYPE = "application/x-ndjson"
SSE_MEDIA_TYPE = "text/event-stream"

_encode = JSON_ENCODER.encode


def json_response(body: Any, status_code: int = 200, background: BackgroundTask | None = None) -> Response:
    return Response(_encode(body), status_code, media_type=JSON_MEDIA_TYPE, background=background)


class ClosingStreamingResponse(StreamingResponse):
    """Starlette abandons the body iterator when the client disconnects; close it, so upstream closes too."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


OnError = Callable[[BaseException], None]


async def ndjson_lines(bursts: AsyncIterable[list[Any]], on_error: OnError, drain: Drain) -> AsyncIterator[bytes]:
    """One compact JSON object per line, a burst per write; a failure after the first line becomes a final
    ``{"error"}`` line."""
    with drain.track():
        try:
            async for replies in bursts:
                yield JSON_ENCODER.encode_lines(replies)
        except Exception as exc:  # the status is already sent: tell the client in-band
            on_error(exc)
            yield _encode(error_line(exc)) + b"\n"
        except asyncio.CancelledError:
            if not ended_by_shutdown(drain):
                raise
            on_error(ShuttingDown())
            yield _encode(error_line(ShuttingDown())) + b"\n"


async def sse_lines(bursts: AsyncIterable[list[bytes]], on_error: OnError, drain: Drain) -> AsyncIterator[bytes]:
    """Relay OpenAI chunks as SSE, a burst per write; a failure becomes an OpenAI error event, and ``[DONE]``
    always ends it."""
    with drain.track():
        try:
            async for payloads in bursts:
                yield b"".join([b"data: " + payload + b"\n\n" for payload in payloads])
        except (Exception, asyncio.CancelledError) as exc:  # mistral.rs's own in-band error event, then [DONE]
            if isinstance(exc, asyncio.CancelledError) and not ended_by_shutdown(drain):
                raise
            failure = exc if isinstance(exc, Exception) else ShuttingDown()
            on_error(failure)
            message = error_line(failure)["error"]
            yield b"data: " + _encode(openai_error(ProxyError(message), "server_error")) + b"\n\n"
        yield b"data: [DONE]\n\n"


async def sse_events(
    bursts: AsyncIterable[list[tuple[str, Any]]],
    on_error: OnError,
    drain: Drain,
    *,
    failed: Callable[[ProxyError], tuple[str, Any]] | None = None,
) -> AsyncIterator[bytes]:
    """Named SSE events (``event:`` and ``data:`` pairs, as Anthropic's and the Responses API's streams), a burst per
    write; a failure becomes the protocol's error event (``failed``; Anthropic's by default), which ends it."""
    with drain.track():
        try:
            async for events in bursts:
                yield b"".join([_event(name, data) for name, data in events])
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not ended_by_shutdown(drain):
                raise
            failure = exc if isinstance(exc, Exception) else ShuttingDown()
            on_error(failure)
            error = failure if isinstance(failure, ProxyError) else ProxyError(error_line(failure)["error"])
            yield _event(*(failed or _anthropic_failure)(error))


def _anthropic_failure(error: ProxyError) -> tuple[str, Any]:
    body = anthropic_error(error)
    del body["request_id"]  # the stream's own error event carries none
    return "error", body


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def ended_by_shutdown(drain: Drain) -> bool:
    """A cancellation from the drain (not a client leaving): keep the task alive to write the error line."""
    task = asyncio.current_task()
    if not drain.expired or task is None:
        return False
    task.uncancel()
    return True


def ndjson_response(lines: AsyncIterable[bytes], background: BackgroundTask | None = None) -> Response:
    return ClosingStreamingResponse(lines, media_type=NDJSON_MEDIA_TYPE, background=background)
