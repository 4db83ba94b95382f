"""A fast stand-in for a mistral.rs server: raw asyncio, hand-rolled HTTP/1.1, no artificial delay.

Speaks the wire format of ``mistralrs serve`` (see /work/shared/reference/mistralrs-server.md):
``POST /v1/chat/completions`` (a ``ChatCompletionResponse`` JSON, or an SSE stream of N chunks where only the
last carries ``usage``, then ``data: [DONE]``, sent with chunked transfer encoding like hyper), ``GET /v1/models``,
``GET /health`` and ``GET /metrics``. N is the request's ``max_tokens`` (default 100).

    python bench/standin.py --port 8080

The HTTP layer (``serve``) is shared with the OTLP sink (``sink.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

DEFAULT_TOKENS = 100
_TOKEN = " word"
_MODEL = "bench-model"
_CREATED_MARK = 9_999_999_999  # as many digits as time.time() has until 2286
_STARTED = int(time.time())


@dataclass(frozen=True)
class Request:
    method: bytes
    path: bytes
    headers: dict[bytes, bytes]
    body: bytes


@dataclass
class Reply:
    """What to write: the head, then each piece with its own write (one per SSE event, like a token stream)."""

    head: bytes
    pieces: list[bytes | memoryview] = field(default_factory=list)


Handler = Callable[[Request], Reply]

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 411: b"Length Required"}


def head(status: int, content_type: bytes, length: int | None, extra: bytes = b"") -> bytes:
    framing = b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%s\r\n" % (
        status,
        _REASONS.get(status, b"Error"),
        content_type,
        framing,
        extra,
    )


def simple(status: int, content_type: bytes, body: bytes, extra: bytes = b"") -> Reply:
    return Reply(head(status, content_type, len(body), extra), [body] if body else [])


class _Connection(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None and (request := self._next_request()) is not None:
            self._respond(request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _next_request(self) -> Request | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self._buffer[:end]).split(b"\r\n")
        method, path, _ = lines[0].split(b" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"transfer-encoding" in headers:  # request bodies always come with a Content-Length here
            self._respond(Request(b"", b"", {b"connection": b"close"}, b""))
            return None
        total = end + 4 + int(headers.get(b"content-length", b"0"))
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        return Request(method, path, headers, body)

    def _respond(self, request: Request) -> None:
        transport = self._transport
        assert transport is not None
        reply = self._handler(request) if request.method else simple(411, b"text/plain", b"length required")
        transport.write(reply.head)
        for piece in reply.pieces:
            transport.write(piece)
        if request.headers.get(b"connection", b"").lower() == b"close":
            transport.close()
            self._transport = None


async def serve(handler: Handler, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(handler), host, port, backlog=1024, reuse_address=True)
    print(f"listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def run(handler: Handler, host: str, port: int) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the project
        asyncio.run(serve(handler, host, port))
    else:
        uvloop.run(serve(handler, host, port))


# --- mistral.rs shapes ----------------------------------------------------------------------------------------------


def _usage(tokens: int) -> dict[str, Any]:
    prompt = 12
    return {
        "completion_tokens": tokens,
        "prompt_tokens": prompt,
        "total_tokens": prompt + tokens,
        "avg_tok_per_sec": 1000.0,
        "avg_prompt_tok_per_sec": 12000.0,
        "avg_compl_tok_per_sec": 1000.0,
        "total_time_sec": (prompt + tokens) / 1000.0,
        "total_prompt_time_sec": 0.001,
        "total_completion_time_sec": tokens / 1000.0,
    }


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _completion(id_mark: str, created_mark: int, tokens: int) -> bytes:
    message = {"content": _TOKEN * tokens, "role": "assistant", "tool_calls": None}
    return _dumps(
        {
            "id": id_mark,
            "choices": [{"finish_reason": "length", "index": 0, "message": message, "logprobs": None}],
            "created": created_mark,
            "model": _MODEL,
            "system_fingerprint": "local",
            "object": "chat.completion",
            "usage": _usage(tokens),
        }
    )


def _chunk(id_mark: str, created_mark: int, last: bool, tokens: int) -> bytes:
    delta = {"content": _TOKEN, "role": "assistant", "tool_calls": None}
    finish = "length" if last else None
    return _dumps(
        {
            "id": id_mark,
            "choices": [{"finish_reason": finish, "index": 0, "delta": delta, "logprobs": None}],
            "created": created_mark,
            "model": _MODEL,
            "system_fingerprint": "local",
            "object": "chat.completion.chunk",
            "usage": _usage(tokens) if last else None,
        }
    )


def _framed(event: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(event), event)


@dataclass(frozen=True)
class _Template:
    """A reply whose id and creation time are placeholders of the very length they will have once filled."""

    body: bytes
    cuts: tuple[int, ...]  # where each write ends
    id_length: int

    def fill(self, id_: bytes, created: bytes) -> bytes:
        id_mark, created_mark = _marks(self.id_length)
        return self.body.replace(b'"id":"%s"' % id_mark.encode(), b'"id":"%s"' % id_).replace(
            b'"created":%d' % created_mark, b'"created":%s' % created
        )


def _marks(id_length: int) -> tuple[str, int]:
    return "#" * id_length, _CREATED_MARK


def _stream_template(tokens: int, id_length: int) -> _Template:
    id_mark, created_mark = _marks(id_length)
    events = [b"data: " + _chunk(id_mark, created_mark, i == tokens - 1, tokens) + b"\n\n" for i in range(tokens)]
    pieces = [_framed(event) for event in events] + [_framed(b"data: [DONE]\n\n") + b"0\r\n\r\n"]
    cuts, offset = [], 0
    for piece in pieces:
        offset += len(piece)
        cuts.append(offset)
    return _Template(b"".join(pieces), tuple(cuts), id_length)


def _completion_template(tokens: int, id_length: int) -> _Template:
    body = _completion(*_marks(id_length), tokens)
    return _Template(body, (len(body),), id_length)


def _models_body() -> bytes:
    card = {"object": "model", "created": _STARTED, "owned_by": "local"}
    return _dumps(
        {
            "object": "list",
            "data": [
                {"id": "default", **card, "root": "default"},
                {"id": _MODEL, **card, "root": _MODEL, "status": "loaded"},
            ],
        }
    )


class StandIn:
    """The request handler: a sequence counter, like mistral.rs's engine, and cached reply templates."""

    def __init__(self, coalesce: bool = False) -> None:
        self._next_id = 0
        self._coalesce = coalesce
        self._templates: dict[tuple[bool, int, int], _Template] = {}
        self._models = simple(200, b"application/json", _models_body())
        self._health = simple(200, b"text/plain; charset=utf-8", b"OK")
        self._metrics = simple(200, b"text/plain; version=0.0.4", b"# mistral.rs stand-in\nstandin_up 1\n")

    def __call__(self, request: Request) -> Reply:
        path = request.path.partition(b"?")[0]
        if path == b"/v1/chat/completions":
            return self._chat(request) if request.method == b"POST" else simple(405, b"text/plain", b"")
        if request.method != b"GET":
            return simple(405 if path in (b"/v1/models", b"/health", b"/metrics") else 404, b"text/plain", b"")
        if path == b"/v1/models":
            return self._models
        if path in (b"/health", b"/"):
            return self._health
        if path == b"/metrics":
            return self._metrics
        return simple(404, b"text/plain", b"")

    def _chat(self, request: Request) -> Reply:
        try:
            body = json.loads(request.body)
            tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_TOKENS)
            stream = body.get("stream") is True
        except (ValueError, TypeError, AttributeError) as exc:
            return simple(400, b"text/plain", f"Failed to parse the request body as JSON: {exc}".encode())
        if tokens < 1:
            return simple(500, b"application/json", b'{"message":"max_tokens must be at least 1."}')
        id_ = str(self._next_id).encode()
        self._next_id += 1
        template = self._template(stream, tokens, len(id_))
        payload = template.fill(id_, str(int(time.time())).encode())
        request_id = request.headers.get(b"x-request-id") or b"req_" + id_
        extra = b"x-request-id: %s\r\n" % request_id
        if not stream:
            return Reply(head(200, b"application/json", len(payload), extra), [payload])
        extra += b"cache-control: no-cache\r\n"
        return Reply(head(200, b"text/event-stream", None, extra), self._pieces(payload, template.cuts))

    def _pieces(self, payload: bytes, cuts: tuple[int, ...]) -> list[bytes | memoryview]:
        if self._coalesce:
            return [payload]
        view, start = memoryview(payload), 0
        pieces: list[bytes | memoryview] = []
        for cut in cuts:
            pieces.append(view[start:cut])
            start = cut
        return pieces

    def _template(self, stream: bool, tokens: int, id_length: int) -> _Template:
        key = (stream, tokens, id_length)
        template = self._templates.get(key)
        if template is None:
            maker = _stream_template if stream else _completion_template
            template = self._templates[key] = maker(tokens, id_length)
        return template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--coalesce", action="store_true", help="write each stream at once, not one event a write")
    args = parser.parse_args()
    run(StandIn(coalesce=args.coalesce), args.host, args.port)


if __name__ == "__main__":
    main()
