"""An in-process emulator of the mistral.rs HTTP server.

Written from the 0.9.x reference, and checked against the real server: tests/conformance/test_transcripts.py
replays the answers recorded from mistral.rs 0.8.1 (the newest on crates.io) and the emulator matches each, except
for `/metrics`, which 0.8.1 does not serve and 0.9 does (so does the emulator). Models of category "text" behave
as that server's GGUF chat model; the default models serve every route.

The bytes on the wire follow /work/shared/reference/mistralrs-server.md: field order is the Rust
struct order, JSON is serde-compact, `Option` fields without `skip_serializing_if` are `null`,
f32 values print as serde/ryu does (shortest round-tripping f32 decimal).

Token accounting (documented so tests can predict it):

* `_tokens(text)` splits at word boundaries, each piece keeping its leading whitespace
  (`"Hello from the"` -> `["Hello", " from", " the"]`); joining the pieces gives the text back.
* chat `prompt_tokens` = whitespace-separated words of every message content (a string, or the
  `text` of `{"type": "text"}` parts) + 3 per message; a bare-string `messages` is one message.
* completions `prompt_tokens` = words of `prompt`; embeddings `prompt_tokens` = words of all inputs.
* `completion_tokens` = emitted reasoning tokens + emitted content tokens; a tool call adds the
  tokens of its name plus those of its arguments string. `max_tokens` (alias
  `max_completion_tokens`) truncates reasoning first, then content, and makes the finish reason
  `"length"`; tool calls are never truncated.
* Engine timings (integer milliseconds, as the engine accumulates them): prompt step
  `10 + prompt_tokens // 10` ms, decode `10` ms per completion token (at least 1 ms).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http
import json
import re
import struct
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FINGERPRINT = "local"
EMBEDDING_DIM = 8
KEEPALIVE = b":\n\n"
MALFORMED = b"data: {not json\n\n"
DONE = b"data: [DONE]\n\n"
STALL_KEEPALIVE_INTERVAL = 0.1  # seconds between keep-alive comments while a `stall_keepalive` stream stalls
_TEMPLATE_ERROR = (
    "invalid operation: tried to use + operator on unsupported types string and sequence (in chat_template:4)"
)
_TOKEN_RE = re.compile(r"\s*\S+|\s+")
# Python json error text -> serde_json error text (the offending character's column is kept).
_SERDE_SYNTAX = (
    ("Expecting property name enclosed in double quotes", "key must be a string"),
    ("Extra data", "trailing characters"),
    ("Expecting ':' delimiter", "expected `:`"),
    ("Expecting ',' delimiter", "expected `,` or `}`"),
)


@dataclass
class Reply:
    """One scripted answer for a chat or completion request.

    Fault injection (every field off by default; a fault's N counts the data events of a stream that went
    out before it, the error event included, keep-alive comments and `[DONE]` not; N beyond the last event
    means "just before `[DONE]`"; several faults at one point apply in the order stall, reset, malformed):

    * `status`: answer with this HTTP status and the raw `body` (None: `{"message": error_message}`)
      instead of generating, streaming or not; content-type `application/json` when the body parses as
      JSON, else `text/plain; charset=utf-8`. No sequence id is taken (like any rejected request).
    * `malformed_after=N`: a stream sends N good events, then `data: {not json` and `data: [DONE]`.
      Non-streaming: 200 `application/json` with the body `{not json`.
    * `reset_after=N`: a stream sends N good events, then the connection is dropped without the chunked
      body's terminator (the client sees an incomplete body). Non-streaming: the headers (with the full
      `content-length`) go out, then the connection is dropped before the body.
    * `stall_after=N`: a stream sends N events, then goes quiet for `stall_for` seconds without closing,
      then carries on; with `stall_keepalive` it sends a `:` keep-alive comment every 0.1 s meanwhile.
      Non-streaming: the headers go out, the body `stall_for` seconds later (no keep-alives).
    * `first_byte_delay`: seconds to wait, after the request was read and admitted (taking its sequence
      id), before the response headers go out; combines with every other field.

    * `burst`: a stream's events, `[DONE]` included, go out in one write, as a fast server's events reach
      a reader that fell behind (with `reset_after`, the events before the reset go out in one write).

    A stall or a first-byte delay ends at once when the client disconnects, which is recorded in
    `Emulator.disconnects`. Like every reply, a faulty one is taken only by a request that passed
    validation and model admission (a rejected request leaves the script alone).
    """

    content: str = "Hello from the emulator."
    reasoning: str | None = None
    tool_calls: list[tuple[str, str]] | None = None
    finish_reason: str | None = None
    # Streaming: an SSE error event after this many token chunks (reasoning chunks count too).
    # Non-streaming: 500 {"message": error_message}.
    error_after: int | None = None
    error_message: str = "model failed"
    # Seconds between stream chunks; a non-streaming answer waits delay * chunk count.
    delay: float = 0.0
    # Fault injection, see the class docstring.
    status: int | None = None
    body: bytes | None = None
    status_headers: dict[str, str] | None = None  # extra headers of a `status` answer, e.g. Retry-After
    malformed_after: int | None = None
    reset_after: int | None = None
    stall_after: int | None = None
    stall_for: float = 3600.0
    stall_keepalive: bool = False
    first_byte_delay: float = 0.0
    burst: bool = False

    def _breaks_body(self) -> bool:
        return self.malformed_after is not None or self.reset_after is not None or self.stall_after is not None


@dataclass
class ModelEntry:
    id: str
    status: str = "loaded"  # "loaded" | "unloaded" | "reloading"
    load_delay: float = 0.0  # seconds spent in "reloading" when (re)loaded
    # "text": a chat model as mistral.rs 0.8.1 serves a GGUF one (no embeddings; its template wants string
    # content); "any": serves every route (the emulator's hypothetical default models).
    category: str = "any"
    context_length: int = 8192


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Plan:
    reasoning: list[str] | None
    content: list[str]
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    usage: dict[str, Any]
    top_logprobs: int | None = None  # None: the request did not ask for logprobs

    def logprob(self, position: int, token: str) -> dict[str, Any] | None:
        """mistral.rs's ``ResponseLogprob`` for one token: base-10 logarithms, alternatives by token id with
        their text in ``bytes``, most likely first, ``top_logprobs`` of them (1 unless the request said)."""
        if self.top_logprobs is None:
            return None
        best = _f32(-0.05 * (1 + position % 4))
        alternatives = [{"token": 100 + position, "logprob": best, "bytes": token}]
        alternatives += [
            {"token": 9000 + k, "logprob": _f32(best - k), "bytes": f" alt{k}"} for k in range(1, self.top_logprobs)
        ]
        top = alternatives[: self.top_logprobs]
        return {"token": token, "logprob": best, "bytes": list(token.encode()), "top_logprobs": top}

    def logprobs(self) -> dict[str, Any] | None:
        """A whole answer's ``Logprobs``: every generated token's, in order."""
        tokens = [*(self.reasoning or []), *self.content]
        return None if self.top_logprobs is None else {"content": [self.logprob(i, t) for i, t in enumerate(tokens)]}


def _top_logprobs(body: dict[str, Any], *, chat: bool) -> int | None:
    """Chat asks with ``logprobs: true`` (+ ``top_logprobs``, default 1); completions with ``logprobs: n``."""
    if chat:
        top = body.get("top_logprobs")
        return (1 if top is None else top) if body.get("logprobs") is True else None
    top = body.get("logprobs")
    return top if isinstance(top, int) and not isinstance(top, bool) else None


class _Reset(Exception):
    """Raised inside a stream to drop the connection instead of finishing the body."""


class _Reject(Exception):
    """Carries a finished error response out of a handler."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


# ---------------------------------------------------------------------------- serialization


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _json(obj: Any, status: int = 200) -> Response:
    return Response(_dumps(obj), status_code=status, media_type="application/json")


def _text(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")


def _too_long(entry: ModelEntry) -> str:
    return f"Prompt sequence length is greater than {entry.context_length}, perhaps consider using `truncate_sequence`?"


def _error(status: int, message: str) -> _Reject:
    return _Reject(_json({"message": message}, status))


def _raw(status: int, body: bytes) -> Response:
    """`body` as is; JSON content-type only when it parses as JSON."""
    try:
        json.loads(body)
    except ValueError:
        return Response(body, status_code=status, media_type="text/plain; charset=utf-8")
    return Response(body, status_code=status, media_type="application/json")


def _to_f32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _f32(value: float) -> float:
    """Round to f32 and return the shortest decimal that maps back to it, as serde prints f32."""
    exact = _to_f32(value)
    for digits in range(1, 10):
        candidate = float(f"{exact:.{digits}g}")
        if _to_f32(candidate) == exact:
            return candidate
    return exact


# ---------------------------------------------------------------------------- tokens and usage


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def _words(text: str) -> int:
    return len(text.split())


def _content_words(content: Any) -> int:
    if isinstance(content, str):
        return _words(content)
    if isinstance(content, list):
        texts = (p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return sum(_words(t) for t in texts if isinstance(t, str))
    return 0


def _chat_prompt_tokens(messages: Any) -> int:
    if isinstance(messages, str):
        return _words(messages) + 3
    if not isinstance(messages, list):
        return 0
    contents = (m.get("content") if isinstance(m, dict) else None for m in messages)
    return sum(_content_words(c) for c in contents) + 3 * len(messages)


def _per_sec(tokens: int, millis: int) -> float:
    # sequence.rs get_usage: (toks as f32 / ms as f32) * 1000.
    return _f32(_to_f32(_to_f32(float(tokens)) / _to_f32(float(millis))) * 1000.0)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    prompt_ms = 10 + prompt_tokens // 10
    completion_ms = max(1, 10 * completion_tokens)
    total_ms = prompt_ms + completion_ms
    total = prompt_tokens + completion_tokens
    return {
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": total,
        "avg_tok_per_sec": _per_sec(total, total_ms),
        "avg_prompt_tok_per_sec": _per_sec(prompt_tokens, prompt_ms),
        "avg_compl_tok_per_sec": _per_sec(completion_tokens, completion_ms),
        "total_time_sec": _f32(total_ms / 1000.0),
        "total_prompt_time_sec": _f32(prompt_ms / 1000.0),
        "total_completion_time_sec": _f32(completion_ms / 1000.0),
    }


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_tokens")
    if value is None:
        value = body.get("max_completion_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tool_calls(calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "index": index,
            "id": f"call-{uuid.uuid4()}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for index, (name, arguments) in enumerate(calls)
    ]


def _plan(reply: Reply, prompt_tokens: int, body: dict[str, Any], *, chat: bool) -> _Plan:
    max_tokens = _max_tokens(body)
    budget = sys.maxsize if max_tokens is None else max(1, max_tokens)  # 0.8.1 makes one token for 0
    calls = _tool_calls(reply.tool_calls) if chat and reply.tool_calls else None
    reasoning = _tokens(reply.reasoning) if chat and reply.reasoning is not None else None
    content = [] if calls else _tokens(reply.content)
    wanted = len(reasoning or []) + len(content)
    if reasoning is not None:
        reasoning = reasoning[:budget]
    content = content[: max(0, budget - len(reasoning or []))]
    produced = len(reasoning or []) + len(content)
    call_tokens = sum(len(_tokens(c[0])) + len(_tokens(c[1])) for c in reply.tool_calls or [])
    default = "tool_calls" if calls else "length" if produced < wanted else "stop"
    usage = _usage(prompt_tokens, produced + (call_tokens if calls else 0))
    return _Plan(reasoning, content, calls, reply.finish_reason or default, usage, _top_logprobs(body, chat=chat))


# ---------------------------------------------------------------------------- response bodies


def _delta(
    content: str | None, reasoning: str | None = None, calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": content, "role": "assistant", "tool_calls": calls}
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return delta


def _envelope(head: dict[str, Any], choices: list[Any], obj: str) -> dict[str, Any]:
    return {
        "id": head["id"],
        "choices": choices,
        "created": head["created"],
        "model": head["model"],
        "system_fingerprint": FINGERPRINT,
        "object": obj,
    }


def _chat_response(head: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    content = None if plan.tool_calls else "".join(plan.content)
    reasoning = None if plan.reasoning is None else "".join(plan.reasoning)
    message = _delta(content, reasoning, plan.tool_calls)
    choice = {"finish_reason": plan.finish_reason, "index": 0, "message": message, "logprobs": plan.logprobs()}
    return {**_envelope(head, [choice], "chat.completion"), "usage": plan.usage}


def _chat_chunk(
    head: dict[str, Any],
    delta: dict[str, Any],
    finish: str | None,
    usage: dict[str, Any] | None,
    logprob: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = {"finish_reason": finish, "index": 0, "delta": delta, "logprobs": logprob}
    return {**_envelope(head, [choice], "chat.completion.chunk"), "usage": usage}


def _error_event(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def _chat_payloads(head: dict[str, Any], plan: _Plan, reply: Reply) -> list[dict[str, Any]]:
    tokens = [*(plan.reasoning or []), *plan.content]
    pieces = [_delta(None, t) for t in plan.reasoning or []] + [_delta(t) for t in plan.content]
    logprobs = [plan.logprob(i, t) for i, t in enumerate(tokens)]
    if reply.error_after is not None:
        partial = [_chat_chunk(head, d, None, None, lp) for d, lp in zip(pieces, logprobs, strict=True)][
            : reply.error_after
        ]
        return [*partial, _error_event(reply.error_message)]
    last_logprob = None
    if plan.tool_calls:
        last = _delta(None, None, plan.tool_calls)
    elif pieces:
        last, last_logprob = pieces.pop(), logprobs.pop()
    else:
        last = _delta("")
    body = [_chat_chunk(head, d, None, None, lp) for d, lp in zip(pieces, logprobs, strict=True)]
    return [*body, _chat_chunk(head, last, plan.finish_reason, plan.usage, last_logprob)]


def _completion_response(head: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    text = "".join(plan.content)
    choice = {"finish_reason": plan.finish_reason, "index": 0, "text": text, "logprobs": plan.logprobs()}
    return {**_envelope(head, [choice], "text_completion"), "usage": plan.usage}


def _completion_chunk(
    head: dict[str, Any], text: str, finish: str | None, logprob: dict[str, Any] | None = None
) -> dict[str, Any]:
    choice = {"text": text, "index": 0, "logprobs": logprob, "finish_reason": finish}
    return _envelope(head, [choice], "text_completion")


def _completion_payloads(head: dict[str, Any], plan: _Plan, reply: Reply) -> list[dict[str, Any]]:
    pieces = list(plan.content)
    logprobs = [plan.logprob(i, t) for i, t in enumerate(pieces)]
    if reply.error_after is not None:
        partial = [_completion_chunk(head, t, None, lp) for t, lp in zip(pieces, logprobs, strict=True)][
            : reply.error_after
        ]
        return [*partial, _error_event(reply.error_message)]
    last, last_logprob = (pieces.pop(), logprobs.pop()) if pieces else ("", None)
    body = [_completion_chunk(head, t, None, lp) for t, lp in zip(pieces, logprobs, strict=True)]
    return [*body, _completion_chunk(head, last, plan.finish_reason, last_logprob)]


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [_f32((byte - 127.5) / 127.5) for byte in digest[:EMBEDDING_DIM]]


def _embedding_value(vector: list[float], encoding: Any) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


# ---------------------------------------------------------------------------- request parsing


def _where(raw: bytes, index: int) -> str:
    line = raw.count(b"\n", 0, index) + 1
    column = index - (raw.rfind(b"\n", 0, index) + 1)
    return f"line {line} column {column}"


def _syntax_message(raw: bytes, exc: ValueError) -> str:
    if not isinstance(exc, json.JSONDecodeError):
        return "invalid unicode code point at line 1 column 1"
    index = len(exc.doc[: exc.pos].encode())
    if exc.msg.startswith("Unterminated string"):
        return f"EOF while parsing a string at {_where(raw, len(raw))}"
    if index >= len(raw.rstrip()):
        what = "an object" if raw.lstrip().startswith(b"{") else "a value"
        return f"EOF while parsing {what} at {_where(raw, len(raw))}"
    text = next((serde for py, serde in _SERDE_SYNTAX if exc.msg.startswith(py)), "expected value")
    return f"{text} at {_where(raw, index + 1)}"


def _serde_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return f'string "{value}"'
    return "sequence" if isinstance(value, list) else "unit value"


# Typed request fields, as serde checks them (in the order they appear in the body).
_F64 = ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty")
_USIZE = ("max_tokens", "max_completion_tokens", "top_k", "n")


def _field_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if name in _F64 and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"invalid type: {_serde_kind(value)}, expected f64"
    if name in _USIZE:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"invalid value: {_serde_kind(value)}, expected usize" if value < 0 else None
        return f"invalid type: {_serde_kind(value)}, expected usize"
    return None


def _value_end(raw: bytes, name: str) -> int:
    """Where serde stops reading a top-level field's value: just after it."""
    text = raw.decode("utf-8", "replace")
    key = text.find(json.dumps(name))
    start = text.index(":", key) + 1
    start += len(text[start:]) - len(text[start:].lstrip())
    _, end = json.JSONDecoder().raw_decode(text, start)
    return len(text[:end].encode())


def _shape_problem(raw: bytes, body: Any, struct_name: str, required: tuple[str, ...]) -> str | None:
    end = _where(raw, len(raw.rstrip()))
    if not isinstance(body, dict):
        return f"invalid type: {_serde_kind(body)}, expected struct {struct_name} at {end}"
    for name, value in body.items():
        if (problem := _field_problem(name, value)) is not None:
            return f"{name}: {problem} at {_where(raw, _value_end(raw, name))}"
    missing = next((name for name in required if name not in body), None)
    return None if missing is None else f"missing field `{missing}` at {end}"


def _is_json_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = mime.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


async def _read_json(request: Request, struct_name: str, required: tuple[str, ...]) -> dict[str, Any]:
    """Mirror axum 0.8's `Json` extractor: 415, then 400 on syntax, then 422 on shape."""
    if not _is_json_type(request.headers.get("content-type")):
        raise _Reject(_text("Expected request with `Content-Type: application/json`", 415))
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError as exc:
        message = f"Failed to parse the request body as JSON: {_syntax_message(raw, exc)}"
        raise _Reject(_text(message, 400)) from None
    problem = _shape_problem(raw, body, struct_name, required)
    if problem is not None:
        message = f"Failed to deserialize the JSON body into the target type: {problem}"
        raise _Reject(_text(message, 422))
    result: dict[str, Any] = body
    return result


# ---------------------------------------------------------------------------- ASGI plumbing


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _tag(send: Send, request_id: str) -> Send:
    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            message = {**message, "headers": headers}
        await send(message)

    return tagged


def _try_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _header_dict(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class _FrontDoor:
    """Records every request before it is answered and stamps `x-request-id` on every response."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self._app = app
        self._emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        body = await _read_body(receive)
        headers = _header_dict(scope)
        recorded = Recorded(scope["method"], scope["path"], headers, _try_json(body))
        self._emulator.requests.append(recorded)
        request_id = headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
        await self._app(scope, _replay(body, receive), _tag(send, request_id))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _slept(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return True


def _clip(after: int | None, events: int) -> int | None:
    return None if after is None else min(max(0, after), events)


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


async def _empty_error(request: Request, exc: Exception) -> Response:
    # axum's fallback 404 and method-not-allowed 405 have empty bodies.
    assert isinstance(exc, HTTPException)
    return Response(b"", status_code=exc.status_code, headers=exc.headers)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Reject)
    return exc.response


# ---------------------------------------------------------------------------- the emulator


class Emulator:
    """A scripted mistral.rs server.

    `app` is the ASGI app; `requests` every request received (recorded before it is answered);
    `next_id` the engine sequence counter, one step per admitted chat/completion request (one
    counter for all models; embeddings and rejected requests take none); `disconnects` the
    `time.monotonic()` at which an abandoned stream was noticed; `active_streams` the streams being
    sent. `keepalive_every=N` sends the `:\\n\\n` keep-alive comment before every Nth data event of
    a stream (the error event counts, `[DONE]` does not). An unknown model lists every configured
    model as available; `default` (or no `model`) is the first one.

    Faults: per reply see `Reply`; `fail_next_gets(n, status)` makes the next n GETs of `/v1/models`
    or `/health` fail; `restart()` forgets what a real server forgets when it restarts.

    `reply_for`, when set, picks each chat or completion request's reply from its body (None: the script's
    next, as without it): for clients too concurrent for the script's order to say which request takes which.
    """

    def __init__(self, models: list[str | ModelEntry] | None = None, *, keepalive_every: int = 0) -> None:
        if models is None:
            models = [ModelEntry("mistral-7b"), ModelEntry("Qwen/Qwen3-4B", "unloaded")]
        self.models = [m if isinstance(m, ModelEntry) else ModelEntry(m) for m in models]
        self.keepalive_every = keepalive_every
        self.created = int(time.time())
        self.next_id = 0
        self.requests: list[Recorded] = []
        self.disconnects: list[float] = []
        self.active_streams = 0
        self.waiting = 0  # what /metrics reports as mistralrs_sequences_waiting (the engine's queue)
        self.tokens_processed = 0
        self._replies: deque[Reply] = deque()
        self.reply_for: Callable[[dict[str, Any]], Reply | None] | None = None
        self._initial_statuses = [(entry, entry.status) for entry in self.models]
        self._failing_gets: deque[tuple[int, str]] = deque()
        self.app: ASGIApp = _FrontDoor(self._starlette(), self)

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def fail_next_gets(self, n: int, status: int = 503, message: str | None = None) -> None:
        """Answer the next `n` GETs of `/v1/models` or `/health` with `status` and
        `{"message": message}` (default: the status's reason phrase, e.g. "Service Unavailable").
        Calls queue up. The requests are recorded in `requests` like any other."""
        text = http.HTTPStatus(status).phrase if message is None else message
        self._failing_gets.extend([(status, text)] * n)

    def restart(self) -> None:
        """What a restart of the real server resets: the sequence counter (`next_id` back to 0), the
        models' statuses (back to their values when the emulator was built), the engine counters of
        `/metrics` and `created` (the server's creation time). Scripts, `requests` and `disconnects`
        are test bookkeeping and are kept. Stopping and starting the HTTP server is up to the test."""
        self.next_id = 0
        self.tokens_processed = 0
        self.created = int(time.time())
        for entry, status in self._initial_statuses:
            entry.status = status

    def model(self, id: str) -> ModelEntry:
        for entry in self.models:
            if entry.id == id:
                return entry
        raise KeyError(id)

    def _starlette(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/completions", self._completions, methods=["POST"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
            Route("/v1/models/status", self._status, methods=["POST"]),
            Route("/v1/models/unload", self._unload, methods=["POST"]),
            Route("/v1/models/reload", self._reload, methods=["POST"]),
            Route("/re_isq", self._re_isq, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/", self._health, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]
        handlers = {_Reject: _rejected, HTTPException: _empty_error}
        return Starlette(routes=routes, exception_handlers=handlers)

    # ------------------------------------------------------------------------ generation

    async def _chat(self, request: Request) -> ASGIApp:
        body = await _read_json(request, "ChatCompletionRequest", ("messages",))
        entry = await self._admit(body)
        messages = body["messages"]
        if (
            entry.category == "text"
            and isinstance(messages, list)
            and any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages)
        ):  # a GGUF chat template (SmolLM2's) concatenates content as a string
            raise _error(500, _TEMPLATE_ERROR)
        prompt_tokens = _chat_prompt_tokens(messages)
        if prompt_tokens > entry.context_length:
            raise _Reject(_json({"message": _too_long(entry)}, 422))
        reply = self._reply(body)
        if reply.status is not None:
            return self._held(reply, self._status_reply(reply))
        plan = _plan(reply, prompt_tokens, body, chat=True)
        head = self._head(entry, plan)
        if body.get("stream") is True:
            payloads = _chat_payloads(head, plan, reply)
            return self._held(reply, _EventStream(self, self._events(payloads, reply)))
        return self._held(reply, await self._answer(_chat_response(head, plan), plan, reply))

    async def _completions(self, request: Request) -> ASGIApp:
        body = await _read_json(request, "CompletionRequest", ("prompt",))
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            problem = f"prompt: invalid type: {_serde_kind(prompt)}, expected a string"
            raise _Reject(_text(f"Failed to deserialize the JSON body into the target type: {problem}", 422))
        entry = await self._admit(body)
        if _words(prompt) > entry.context_length:
            raise _Reject(_json({"message": _too_long(entry)}, 422))
        reply = self._reply(body)
        if reply.status is not None:
            return self._held(reply, self._status_reply(reply))
        plan = _plan(reply, _words(prompt), body, chat=False)
        head = self._head(entry, plan)
        if body.get("stream") is True:
            payloads = _completion_payloads(head, plan, reply)
            return self._held(reply, _EventStream(self, self._events(payloads, reply)))
        return self._held(reply, await self._answer(_completion_response(head, plan), plan, reply))

    def _reply(self, body: dict[str, Any]) -> Reply:
        chosen = self.reply_for(body) if self.reply_for is not None else None
        if chosen is not None:
            return chosen
        return self._replies.popleft() if self._replies else Reply()

    def _status_reply(self, reply: Reply) -> Response:
        assert reply.status is not None
        body = _dumps({"message": reply.error_message}) if reply.body is None else reply.body
        response = _raw(reply.status, body)
        response.headers.update(reply.status_headers or {})
        return response

    def _held(self, reply: Reply, app: ASGIApp) -> ASGIApp:
        return _Held(self, app, reply.first_byte_delay) if reply.first_byte_delay > 0 else app

    async def _admit(self, body: dict[str, Any]) -> ModelEntry:
        entry = self._resolve(body.get("model"))
        if entry.status == "reloading":
            raise _error(500, f"model `{entry.id}` is being reloaded")
        if entry.status == "unloaded":
            await self._load(entry)
        return entry

    def _resolve(self, name: Any) -> ModelEntry:
        if not self.models:
            raise _error(500, "No models are currently loaded.")
        if name is None or name == "default":
            return self.models[0]
        for entry in self.models:
            if entry.id == name:
                return entry
        available = ", ".join(m.id for m in self.models)
        raise _error(
            500,
            f"Requested model '{name}' is not available. Available models: {available}. "
            "Use 'default' to use the default model.",
        )

    async def _load(self, entry: ModelEntry) -> None:
        entry.status = "reloading"
        await asyncio.sleep(entry.load_delay)
        entry.status = "loaded"

    def _head(self, entry: ModelEntry, plan: _Plan) -> dict[str, Any]:
        head = {"id": str(self.next_id), "created": int(time.time()), "model": entry.id}
        self.next_id += 1
        self.tokens_processed += plan.usage["total_tokens"]
        return head

    async def _answer(self, obj: dict[str, Any], plan: _Plan, reply: Reply) -> ASGIApp:
        chunks = len(plan.reasoning or []) + len(plan.content) + (1 if plan.tool_calls else 0)
        if reply.delay:
            await asyncio.sleep(reply.delay * chunks)
        if reply.error_after is not None:
            response = _json({"message": reply.error_message}, 500)
        else:
            response = _json(obj)
        return _BrokenBody(self, response, reply) if reply._breaks_body() else response

    async def _events(self, payloads: list[dict[str, Any]], reply: Reply) -> AsyncIterator[bytes]:
        if not reply.burst:
            async for event in self._sse(payloads, reply):
                yield event
            return
        events: list[bytes] = []
        try:
            async for event in self._sse(payloads, reply):
                events.append(event)
        except _Reset:  # what came before the reset still goes out
            yield b"".join(events)
            raise
        yield b"".join(events)

    async def _sse(self, payloads: list[dict[str, Any]], reply: Reply) -> AsyncIterator[bytes]:
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
            if self.keepalive_every and number % self.keepalive_every == 0:
                yield KEEPALIVE
            yield b"data: " + _dumps(payloads[sent]) + b"\n\n"
            await asyncio.sleep(0)
        yield DONE

    async def _embeddings(self, request: Request) -> Response:
        body = await _read_json(request, "EmbeddingRequest", ("input",))
        if (await self._admit(body)).category == "text":
            raise _error(500, "Received a request incompatible for this model's category.")
        raw = body["input"]
        inputs = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else [raw]
        texts = [x if isinstance(x, str) else json.dumps(x) for x in inputs]
        encoding = body.get("encoding_format")
        data = [
            {"object": "embedding", "embedding": _embedding_value(_embedding(t), encoding), "index": i}
            for i, t in enumerate(texts)
        ]
        words = sum(_words(t) for t in texts)
        usage = {"prompt_tokens": words, "total_tokens": words}
        return _json({"object": "list", "data": data, "model": body.get("model", "default"), "usage": usage})

    # ------------------------------------------------------------------------ models and misc

    def _failing_get(self, request: Request) -> Response | None:
        if request.method != "GET" or request.url.path not in ("/v1/models", "/health") or not self._failing_gets:
            return None
        status, message = self._failing_gets.popleft()
        return _json({"message": message}, status)

    async def _list_models(self, request: Request) -> Response:
        failed = self._failing_get(request)
        if failed is not None:
            return failed

        def card(model_id: str) -> dict[str, Any]:
            return {
                "id": model_id,
                "object": "model",
                "created": self.created,
                "owned_by": "local",
            }

        data = [card("default")] + [{**card(m.id), "status": m.status} for m in self.models]
        return _json({"object": "list", "data": data})

    async def _status(self, request: Request) -> Response:
        return await self._manage(request, "status")

    async def _unload(self, request: Request) -> Response:
        return await self._manage(request, "unload")

    async def _reload(self, request: Request) -> Response:
        return await self._manage(request, "reload")

    async def _manage(self, request: Request, action: str) -> Response:
        body = await _read_json(request, "ModelIdRequest", ("model_id",))
        model_id = body["model_id"]
        entry = next((m for m in self.models if m.id == model_id), None)
        if entry is None:
            return _json({"model_id": model_id, "status": "not_found"})
        if action == "unload":
            entry.status = "unloaded"
        elif action == "reload" and entry.status != "loaded":
            await self._load(entry)
        return _json({"model_id": model_id, "status": entry.status})

    async def _re_isq(self, request: Request) -> Response:
        body = await _read_json(request, "ReIsqRequest", ("ggml_type",))
        return _text(f"Re ISQ: {json.dumps(body['ggml_type'])}")

    async def _health(self, request: Request) -> Response:
        failed = self._failing_get(request)
        return _text("OK") if failed is None else failed

    async def _metrics(self, request: Request) -> Response:
        lines = [
            "# HELP mistralrs_sequences_running Number of sequences currently running.",
            "# TYPE mistralrs_sequences_running gauge",
            f"mistralrs_sequences_running {self.active_streams}",
            "# HELP mistralrs_sequences_waiting Number of sequences waiting to be scheduled.",
            "# TYPE mistralrs_sequences_waiting gauge",
            f"mistralrs_sequences_waiting {self.waiting}",
            "# HELP mistralrs_tokens_processed_total Total number of tokens processed.",
            "# TYPE mistralrs_tokens_processed_total counter",
            f"mistralrs_tokens_processed_total {self.tokens_processed}",
        ]
        media = "text/plain; version=0.0.4; charset=utf-8"
        return Response("\n".join(lines) + "\n", media_type=media)
