"""What a chat or completion request is answered with: the scripted `Reply`, and the plan of tokens, usage and
logprobs the emulator derives from it and the request.

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

import re
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from tests.emulator.wire import _f32, _to_f32

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


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
