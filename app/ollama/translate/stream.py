"""mistral.rs chunks → Ollama chunks, with the durations the proxy measures itself (on the generation's one
``Clock``, which the GenAI observer marks as tokens arrive).

Each upstream chunk becomes at most one Ollama ``done: false`` object (text, thinking), tool calls are
gathered until the finish chunk and sent whole (Ollama clients want ``arguments`` as an object), and one
``done: true`` object closes the stream with ``done_reason``, token counts and integer-nanosecond durations:

| Ollama field           | measured as                                                           |
|------------------------|-----------------------------------------------------------------------|
| `total_duration`       | request received → final object                                       |
| `load_duration`        | a model load the request triggered, else request received → upstream call |
| `prompt_eval_duration` | upstream call → first token                                           |
| `eval_duration`        | first token → last token                                              |
| `prompt_eval_count`    | `usage.prompt_tokens` (absent when mistral.rs reports no usage)       |
| `eval_count`           | `usage.completion_tokens`, else the number of text chunks             |
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from functools import lru_cache
from typing import Any, Literal

import msgspec
from msgspec import UNSET

from app.errors import UpstreamProtocolError
from app.ollama import AssistantMessage, ChatResponse, FunctionCallOut, GenerateResponse, Logprob, ToolCallOut
from app.ollama.translate import context, logprobs
from app.upstream.wire import ChatCompletionChunk, ToolCallDelta, Usage
from otel.clock import Clock

__all__ = ["Kind", "OllamaStream", "Reply", "decode_chunks", "rfc3339_utc", "to_ollama"]

Reply = ChatResponse | GenerateResponse
Kind = Literal["chat", "generate"]
_decode_chunk = msgspec.json.Decoder(ChatCompletionChunk).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


@lru_cache(maxsize=4)
def _utc_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def rfc3339_utc(ns: int | None = None) -> str:
    """Go's ``time.Now().UTC()`` as JSON: nanoseconds with trailing zeros trimmed."""
    seconds, fraction = divmod(time.time_ns() if ns is None else ns, 1_000_000_000)
    digits = f"{fraction:09d}".rstrip("0")
    return f"{_utc_seconds(seconds)}.{digits}Z" if digits else f"{_utc_seconds(seconds)}Z"


async def decode_chunks(bursts: AsyncIterable[list[bytes]]) -> AsyncIterator[list[ChatCompletionChunk]]:
    """Each burst decoded; a malformed payload ends the stream after the good chunks before it."""
    async for payloads in bursts:
        chunks: list[ChatCompletionChunk] = []
        for payload in payloads:
            try:
                chunks.append(_decode_chunk(payload))
            except msgspec.MsgspecError:
                if chunks:
                    yield chunks
                raise UpstreamProtocolError("mistral.rs sent a malformed stream chunk") from None
        yield chunks


class _ToolCalls:
    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}

    def add(self, deltas: list[ToolCallDelta]) -> None:
        for delta in deltas:
            call = self._calls.setdefault(delta.index, ["", "", ""])
            function = delta.function
            call[0] = delta.id or call[0]
            if function is not None:
                call[1] = function.name or call[1]
                call[2] += function.arguments or ""

    def flush(self) -> list[ToolCallOut]:
        calls, self._calls = self._calls, {}
        return [_tool_call(index, *calls[index]) for index in sorted(calls)]


def _tool_call(index: int, call_id: str, name: str, arguments: str) -> ToolCallOut:
    try:
        parsed = _decode_object(arguments or "{}")
    except msgspec.MsgspecError:
        raise UpstreamProtocolError("mistral.rs sent tool call arguments that are not a JSON object") from None
    out = ToolCallOut(function=FunctionCallOut(index=index, name=name, arguments=parsed))
    if call_id:
        out.id = call_id
    return out


class OllamaStream:
    """The translation state of one generation; ``usage`` and ``finish_reason`` stay readable afterwards."""

    def __init__(
        self,
        model: str,
        kind: Kind,
        clock: Clock,
        conversation: list[dict[str, Any]] | None = None,
        top_logprobs: int | None = None,
        logprob_scale: float = 1.0,
    ) -> None:
        self.model, self.kind, self.clock = model, kind, clock
        # A generate's turns so far: its final object carries them, and this answer, as ``context``.
        self._conversation = conversation
        # None: the client did not ask for log probabilities; else how many alternatives it wants.
        self._top_logprobs, self._logprob_scale = top_logprobs, logprob_scale
        self._answer: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.text_chunks = 0
        self._tools = _ToolCalls()

    def translate(self, chunk: ChatCompletionChunk) -> list[Reply]:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if not chunk.choices:
            return []
        choice = chunk.choices[0]
        delta = choice.delta
        text = delta.content if delta is not None else choice.text
        thinking = delta.reasoning_content if delta is not None else None
        if delta is not None and delta.tool_calls and self.kind == "chat":
            self._tools.add(delta.tool_calls)
        probabilities = None
        if self._top_logprobs is not None and choice.logprobs:
            probabilities = logprobs.to_ollama_logprobs(choice.logprobs, self._top_logprobs, self._logprob_scale)
        # As Ollama, a token whose text is still held back (a partial character) is sent for its logprob.
        wanted = text or thinking or probabilities
        replies = [self._reply(text or "", thinking, logprobs=probabilities)] if wanted else []
        if text and self._conversation is not None:
            self._answer.append(text)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
            if tool_calls := self._tools.flush():
                replies.append(self._reply("", None, tool_calls))
        self.text_chunks += len(replies)
        return replies

    def whole(self, chunk: ChatCompletionChunk) -> Reply:
        """A non-streamed answer: mistral.rs measured prefill and decode itself (in whole milliseconds), so its
        ratio splits the upstream time the proxy measured into prompt and eval durations."""
        received = time.perf_counter_ns()
        replies = [*self.translate(chunk), self.finish()]
        usage, clock = self.usage, self.clock
        spent = received - clock.upstream
        engine = usage.total_prompt_time_sec + usage.total_completion_time_sec if usage else 0.0
        share = usage.total_prompt_time_sec / engine if usage and engine > 0 else 1.0
        clock.first, clock.last = clock.upstream + int(spent * share), received
        final = replies[-1]
        final.prompt_eval_duration = clock.first - clock.upstream or UNSET
        final.eval_duration = clock.last - clock.first or UNSET
        return _joined(replies)

    def finish(self) -> Reply:
        if tool_calls := self._tools.flush():
            return self._with_stats(self._reply("", None, tool_calls))
        return self._with_stats(self._reply("", None))

    def _reply(
        self,
        text: str,
        thinking: str | None,
        tool_calls: list[ToolCallOut] | None = None,
        logprobs: list[Logprob] | None = None,
    ) -> Reply:
        created_at = rfc3339_utc()
        reply: Reply
        if self.kind == "generate":
            reply = GenerateResponse(model=self.model, created_at=created_at, response=text, done=False)
            if thinking:
                reply.thinking = thinking
        else:
            message = AssistantMessage(role="assistant", content=text)
            if thinking:
                message.thinking = thinking
            if tool_calls:
                message.tool_calls = tool_calls
            reply = ChatResponse(model=self.model, created_at=created_at, message=message, done=False)
        if logprobs:
            reply.logprobs = logprobs
        return reply

    def _with_stats(self, reply: Reply) -> Reply:
        clock, now = self.clock, time.perf_counter_ns()
        reply.done = True
        reply.done_reason = "length" if self.finish_reason == "length" else "stop"
        reply.total_duration = now - clock.start
        reply.load_duration = clock.load or max(clock.upstream - clock.start, 0)
        # Ollama leaves zero metrics out (Go's omitempty): one token has no eval_duration.
        reply.prompt_eval_duration = (clock.first or now) - clock.upstream or UNSET
        reply.eval_duration = (clock.last - clock.first if clock.first else 0) or UNSET
        if self._conversation is not None and isinstance(reply, GenerateResponse):
            reply.context = context.conversation_context(self._conversation, "".join(self._answer))
        if self.usage is not None:
            reply.prompt_eval_count = self.usage.prompt_tokens or UNSET
            reply.eval_count = self.usage.completion_tokens or UNSET
        else:
            reply.eval_count = self.text_chunks or UNSET
        return reply


async def to_ollama(
    bursts: AsyncIterable[list[ChatCompletionChunk]], stream: OllamaStream
) -> AsyncIterator[list[Reply]]:
    """The Ollama objects of each burst of chunks (bursts that make none are skipped), then the final one.

    A stream in which no chunk had a choice answered nothing: that is mistral.rs's failure, not an empty answer.
    """
    answered = False
    async for chunks in bursts:
        answered = answered or any(chunk.choices for chunk in chunks)
        if replies := [reply for chunk in chunks for reply in stream.translate(chunk)]:
            yield replies
    if not answered:
        raise UpstreamProtocolError("mistral.rs sent a stream without any choices")
    yield [stream.finish()]


def _joined(replies: list[Reply]) -> Reply:
    text: list[str] = []
    thinking: list[str] = []
    tool_calls: list[ToolCallOut] = []
    probabilities: list[Logprob] = []
    final: Reply | None = None
    for reply in replies:
        final = reply
        probabilities.extend(reply.logprobs or [])
        if isinstance(reply, GenerateResponse):
            text.append(reply.response)
            thinking.append(reply.thinking or "")
        else:
            text.append(reply.message.content)
            thinking.append(reply.message.thinking or "")
            tool_calls.extend(reply.message.tool_calls or [])
    assert final is not None, "to_ollama always ends with a final reply"
    if probabilities:
        final.logprobs = probabilities
    if isinstance(final, GenerateResponse):
        final.response = "".join(text)
        if any(thinking):
            final.thinking = "".join(thinking)
    else:
        final.message.content = "".join(text)
        if any(thinking):
            final.message.thinking = "".join(thinking)
        if tool_calls:
            final.message.tool_calls = tool_calls
    return final
