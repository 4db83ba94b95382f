"""What a generation does between parsing and responding: load, observe, stream or collect, unload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from app.catalog import Entry, ModelCatalog
from app.drain import Drain
from app.errors import ModelNotFound, UpstreamError, UpstreamProtocolError
from app.limits import Limiter
from app.ollama import AssistantMessage, ChatResponse, GenerateResponse
from app.responses import (
    cancel_on_disconnect,
    json_response,
    ndjson_lines,
    ndjson_response,
    sse_lines,
    sse_response,
)
from app.settings import Settings
from app.translate.stream import Clock, Kind, OllamaStream, Reply, decode_chunks, rfc3339_utc, to_ollama
from app.upstream import ChatCompletionChunk, PayloadStream, Route, Upstream
from app.upstream.schema import Completion, EmbeddingResponse
from otel.genai import GenAIObserver, Invocation, error_type_of, observe
from otel.metrics import record_error
from otel.semconv import GenAI

__all__ = ["Generation", "Service", "service_of"]

T = TypeVar("T")
_OPERATIONS: dict[Route, str] = {
    "chat": GenAI.CHAT,
    "completion": GenAI.TEXT_COMPLETION,
    "embeddings": GenAI.EMBEDDINGS,
}
_decode_chunk = msgspec.json.Decoder(ChatCompletionChunk).decode
_decode_completion = msgspec.json.Decoder(Completion).decode
_decode_embeddings = msgspec.json.Decoder(EmbeddingResponse).decode


@dataclass(frozen=True, slots=True)
class Generation:
    """One Ollama chat or generate call, translated and ready to send upstream."""

    kind: Kind
    route: Route
    body: dict[str, Any]
    entry: Entry
    requested: str  # the model name as the client sent it, echoed in every reply
    stream: bool
    unload_after: bool
    clock: Clock


@dataclass(frozen=True, slots=True)
class Service:
    settings: Settings
    upstream: Upstream
    catalog: ModelCatalog
    observer: GenAIObserver
    limiter: Limiter
    drain: Drain

    async def generate(self, request: Request, generation: Generation) -> Response:
        clock = generation.clock
        await self.limiter.acquire()
        invocation = self.observer.start(
            _OPERATIONS[generation.route], generation.entry.id, generation.body, request_start=clock.start
        )
        done = _Finish(invocation, self.limiter)
        ollama = OllamaStream(generation.requested, generation.kind, clock)
        background = BackgroundTask(self.unload, generation.entry) if generation.unload_after else None
        if not generation.stream:
            # One JSON answer from mistral.rs costs far less to relay than a stream of chunks.
            body = generation.body
            raw = await cancel_on_disconnect(request.receive, lambda: self._post(invocation, generation, body, done))
            return json_response(ollama.whole(_decode_answer(raw)), background=background)
        payloads = await self._open(invocation, generation, done)
        replies = to_ollama(observe(decode_chunks(payloads), invocation), ollama)
        # Wait for the first reply, so that a failure before it is still an ordinary HTTP error.
        first = await done.guard(payloads, anext(replies))
        lines = ndjson_lines(_prepend(first, replies), _failure(request, invocation), self.drain)
        return ndjson_response(_owning(payloads, lines, done), background)

    async def relay(self, request: Request, route: Route, body: dict[str, Any], entry: Entry) -> Response:
        """The OpenAI pass-through: mistral.rs's bytes go out as they came, observed on the way."""
        clock = Clock()
        await self.limiter.acquire()
        invocation = self.observer.start(_OPERATIONS[route], entry.id, body, request_start=clock.start)
        done = _Finish(invocation, self.limiter)
        if route != "embeddings" and body.get("stream") is True:
            generation = Generation("chat", route, body, entry, entry.name, True, False, clock)
            payloads = await self._open(invocation, generation, done)
            observed = observe(aiter(payloads), invocation, _chunk_or_none)
            first = await done.guard(payloads, anext(observed))
            lines = sse_lines(_prepend(first, observed), _failure(request, invocation), self.drain)
            return sse_response(_owning(payloads, lines, done))
        generation = Generation("chat", route, body, entry, entry.name, False, False, clock)
        raw = await cancel_on_disconnect(request.receive, lambda: self._post(invocation, generation, body, done))
        return Response(raw, media_type="application/json")

    async def embed(self, entry: Entry, inputs: list[str]) -> EmbeddingResponse:
        body = {"model": entry.id, "input": inputs}
        await self.limiter.acquire()
        clock = Clock()
        invocation = self.observer.start(GenAI.EMBEDDINGS, entry.id, body, request_start=clock.start)
        generation = Generation("chat", "embeddings", body, entry, entry.name, False, False, clock)
        raw = await self._post(invocation, generation, body, _Finish(invocation, self.limiter))
        try:
            return _decode_embeddings(raw)
        except msgspec.MsgspecError:
            raise UpstreamProtocolError("mistral.rs sent a malformed embeddings response") from None

    async def load_or_unload(self, kind: Kind, entry: Entry, requested: str, unload: bool, clock: Clock) -> Response:
        """An empty prompt loads the model, and with ``keep_alive: 0`` unloads it (one JSON object)."""
        if unload:
            await self.unload(entry)
        else:
            await self._ensure_loaded(entry, clock, check=True)
        reply = _done_reply(kind, requested, "unload" if unload else "load")
        if clock.load:
            reply.load_duration = clock.load
            reply.total_duration = time.perf_counter_ns() - clock.start
        return json_response(reply)

    async def unload(self, entry: Entry) -> None:
        state = await self.upstream.manage_model("unload", entry.id)
        _raise_for_state(entry, state.status, state.error)
        self.catalog.set_status(entry.id, "unloaded")

    async def _ensure_loaded(self, entry: Entry, clock: Clock, *, check: bool = False) -> None:
        """Load a model mistral.rs has unloaded ourselves, so that the load is measured, not hidden."""
        status = entry.card.status
        if check:
            state = await self.upstream.manage_model("status", entry.id)
            _raise_for_state(entry, state.status, state.error)
            status = state.status
        if status in ("unloaded", "reloading"):
            started = time.perf_counter_ns()
            with self.observer.loading(entry.id):
                state = await self.upstream.manage_model("reload", entry.id)
                _raise_for_state(entry, state.status, state.error)
            clock.load = time.perf_counter_ns() - started
            self.catalog.set_status(entry.id, "loaded")

    async def _open(self, invocation: Invocation, generation: Generation, done: _Finish) -> PayloadStream:
        clock, entry = generation.clock, generation.entry
        deadline = time.monotonic() + self.settings.request_timeout
        try:
            with invocation.current():
                await self._ensure_loaded(entry, clock)
                clock.upstream = time.perf_counter_ns()
                return await self.upstream.open_stream(generation.route, generation.body, deadline)
        except ModelNotFound as exc:  # mistral.rs dropped it since the catalog was read
            done(exc)
            raise ModelNotFound(entry.name) from None
        except BaseException as exc:
            done(exc)
            raise

    async def _post(self, invocation: Invocation, generation: Generation, body: dict[str, Any], done: _Finish) -> bytes:
        route = generation.route
        try:
            with invocation.current():
                await self._ensure_loaded(generation.entry, generation.clock)
                generation.clock.upstream = time.perf_counter_ns()
                raw = await self.upstream.post(route, body)
        except ModelNotFound as exc:
            done(exc)
            raise ModelNotFound(generation.entry.name) from None
        except BaseException as exc:
            done(exc)
            raise
        _observe_response(invocation, raw, route)
        done(None)
        return raw


def _observe_response(invocation: Invocation, raw: bytes, route: Route) -> None:
    try:
        if route == "embeddings":
            usage = _decode_embeddings(raw).usage
            invocation.set_usage(usage.prompt_tokens if usage else None)
        else:
            answer = _decode_completion(raw)
            reasons = [choice.finish_reason for choice in answer.choices if choice.finish_reason]
            first = answer.choices[0] if answer.choices else None
            text = (first.message.content if first.message else first.text) if first else None
            invocation.on_response(answer.id, answer.model, reasons, answer.usage, text)
    except msgspec.MsgspecError:
        pass  # relayed as it came; telemetry just learns less


def service_of(request: Request) -> Service:
    """The service the lifespan put on the application's state."""
    service: Service = request.app.state.service
    return service


def _decode_answer(raw: bytes) -> ChatCompletionChunk:
    try:
        completion = _decode_completion(raw)
    except msgspec.MsgspecError:
        raise UpstreamProtocolError("mistral.rs sent a malformed answer") from None
    if not completion.choices:  # valid JSON that answers nothing: an answer lost, not an empty one
        raise UpstreamProtocolError("mistral.rs sent an answer without choices")
    return completion.as_chunk()


def _chunk_or_none(payload: bytes) -> ChatCompletionChunk | None:
    try:
        return _decode_chunk(payload)
    except msgspec.MsgspecError:
        return None


def _failure(request: Request, invocation: Invocation) -> Callable[[BaseException], None]:
    """Report an error that ends a stream after its first byte: to the HTTP metrics and the GenAI span."""

    def fail(exc: BaseException) -> None:
        error_type = error_type_of(exc)
        record_error(request.scope, error_type)
        invocation.fail(error_type)

    return fail


def _raise_for_state(entry: Entry, status: str, error: str | None) -> None:
    if status == "not_found":
        raise ModelNotFound(entry.name)
    if status == "internal_error":
        raise UpstreamError(f"mistral.rs could not manage model '{entry.name}': {error or 'unknown error'}")


def _done_reply(kind: Kind, model: str, reason: str) -> Reply:
    created_at = rfc3339_utc()
    if kind == "generate":
        return GenerateResponse(model=model, created_at=created_at, response="", done=True, done_reason=reason)
    message = AssistantMessage(role="assistant", content="")
    return ChatResponse(model=model, created_at=created_at, message=message, done=True, done_reason=reason)


class _Finish:
    """Ends a generation exactly once: its GenAI invocation, and its slot in the limiter."""

    def __init__(self, invocation: Invocation, limiter: Limiter) -> None:
        self._invocation, self._limiter, self._done = invocation, limiter, False

    def __call__(self, error: BaseException | None) -> None:
        if error is None:
            self._invocation.stop()
        else:
            self._invocation.fail(error_type_of(error))
        if not self._done:
            self._done = True
            self._limiter.release()

    async def guard(self, payloads: PayloadStream, step: Awaitable[T]) -> T:
        """Await ``step``; if it fails, release the upstream response and finish with the error."""
        try:
            return await step
        except BaseException as exc:
            await payloads.aclose()
            self(exc)
            raise


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    yield first
    async for item in rest:
        yield item


async def _owning(payloads: PayloadStream, lines: AsyncIterator[bytes], done: _Finish) -> AsyncIterator[bytes]:
    """The one generator that owns the upstream response: however the stream ends, it is released."""
    try:
        async for line in lines:
            yield line
    finally:
        await payloads.aclose()
        done(asyncio.CancelledError())  # a no-op for the invocation unless the client left before the end
