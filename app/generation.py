"""A generation's lifecycle, in one place: its slot, its GenAI invocation, the upstream call or stream, its answer.

``Generations.run(...)`` is the async context manager every generation goes through. Entering takes a slot in the
limiter and starts the invocation; leaving closes the upstream stream, finalises the invocation exactly once
(success, upstream error, client gone, cancellation or shutdown) and frees the slot. Nothing else ends an
invocation. A streamed answer runs its generation inside its response (``GenerationStream``), entered when the
response starts and left when its last line is written; until its first line is ready, a failure is still an
ordinary HTTP error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import anyio
import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.anthropic import MessageEvents, message_id, to_message
from app.bounds import Bounds
from app.drain import Drain
from app.errors import ModelNotFound, ProxyError, ShuttingDown, UpstreamError, UpstreamProtocolError
from app.http.disconnect import cancel_on_disconnect
from app.http.responses import (
    NDJSON_MEDIA_TYPE,
    SSE_MEDIA_TYPE,
    ClosingStreamingResponse,
    OnError,
    ended_by_shutdown,
    json_response,
    ndjson_lines,
    sse_events,
    sse_lines,
)
from app.limiter import Limiter
from app.models import Entry, ModelCatalog
from app.ollama import AssistantMessage, ChatResponse, GenerateResponse
from app.ollama.translate.stream import Kind, OllamaStream, Reply, decode_chunks, rfc3339_utc, to_ollama
from app.openai import ResponseEvents, ResponsesRequest, response_id, to_response
from app.openai.shape import ollama_shaped
from app.settings import Settings
from app.tenants import Lease, Quotas, current_tenant, estimate_tokens
from app.upstream import OPERATIONS, PayloadStream, Route, Upstream
from app.upstream.timeouts import Silence
from app.upstream.wire import ChatCompletionChunk, Completion, EmbeddingResponse
from otel.chunks import Chunk, observe
from otel.clock import Clock
from otel.genai import GenAIObserver, Invocation, error_type_of

__all__ = ["Services", "GenerationStream", "Generations", "Run", "services_of"]

T = TypeVar("T")
_decode_chunk = msgspec.json.Decoder(ChatCompletionChunk).decode
_decode_completion = msgspec.json.Decoder(Completion).decode
_decode_embeddings = msgspec.json.Decoder(EmbeddingResponse).decode


class Run:
    """One generation in flight; see the module docstring. ``open``/``post`` call mistral.rs under its span."""

    invocation: Invocation

    def __init__(self, generations: Generations, route: Route, entry: Entry, body: dict[str, Any], clock: Clock):
        self._generations, self.route, self.entry, self.body, self.clock = generations, route, entry, body, clock
        self._payloads: PayloadStream | None = None
        self._failure: BaseException | None = None
        self._complete = self._closed = False
        self._lease: Lease | None = None

    async def __aenter__(self) -> Run:
        generations = self._generations
        if (tenant := current_tenant()) is not None:  # its limits first: a refused request takes no slot
            self._lease = await generations.quotas.begin(tenant, estimate_tokens(self.body))
        try:
            await generations.limiter.acquire()
        except BaseException:
            if self._lease is not None:
                with anyio.CancelScope(shield=True):
                    await self._lease.end(None)
            raise
        self.invocation = generations.observer.start(OPERATIONS[self.route], self.entry.id, self.body, clock=self.clock)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(exc)

    async def close(self, exc: BaseException | None) -> None:
        """Leave the run (what ``__aexit__`` does); only the first call counts."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._payloads is not None:
                with anyio.CancelScope(shield=True):
                    await self._payloads.aclose()
        finally:
            error = self._failure or exc  # an in-band failure came first
            if error is None and not self._complete:
                error = asyncio.CancelledError()  # the answer stopped before its end: its client left
            if error is None:
                self.invocation.stop()
            else:
                self.invocation.fail(error_type_of(error))
            self._generations.limiter.release()
            if self._lease is not None:  # given back even when the run was cancelled (the store answers fast)
                with anyio.CancelScope(shield=True):
                    await self._lease.end(self.invocation.tokens_used)

    async def open(self) -> PayloadStream:
        deadline = time.monotonic() + self._generations.settings.request_timeout
        self._payloads = await self._call(
            lambda: self._generations.upstream.open_stream(self.route, self.body, deadline)
        )
        return self._payloads

    async def post(self) -> bytes:
        # The same time limit as a stream's, met the same way: the call is cancelled, which ends the upstream's work.
        limit = self._generations.settings.request_timeout
        try:
            async with asyncio.timeout(limit) as timer:
                raw = await self._call(lambda: self._generations.upstream.post(self.route, self.body))
        except TimeoutError:
            if not timer.expired():
                raise
            raise self._generations.settings.stream_timeouts.error(Silence.DEADLINE) from None
        _observe_answer(self.invocation, raw, self.route)
        self._complete = True
        return raw

    async def observe(
        self, bursts: AsyncIterator[list[T]], chunk_of: Callable[[T], Chunk | None] | None = None
    ) -> AsyncIterator[list[T]]:
        """The stream's bursts, watched by the invocation; reaching the end is what makes the run complete."""
        async for items in observe(bursts, self.invocation, chunk_of):
            yield items
        self._complete = True

    def fail(self, exc: BaseException) -> None:
        """An error that ended the stream after its first byte (written to the client in-band)."""
        self._failure = self._failure or exc

    async def _call(self, send: Callable[[], Awaitable[T]]) -> T:
        try:
            with self.invocation.current():
                await self._generations.ensure_loaded(self.entry, self.clock)
                self.clock.upstream = time.perf_counter_ns()
                return await send()
        except ModelNotFound:  # mistral.rs dropped it since the catalog was read
            raise ModelNotFound(self.entry.name) from None


Framing = Callable[[AsyncIterator[list[Any]], OnError, Drain], AsyncIterator[bytes]]


class GenerationStream(ClosingStreamingResponse, Generic[T]):
    """A streamed answer that runs its generation while it is sent: ``bursts`` turns the upstream stream into
    bursts of replies, ``framing`` writes them (NDJSON lines or SSE events).

    The run is entered and left in one place, the body's ``async with``: its first line is read before the
    response starts (a failure until then is an ordinary HTTP error), and the run is left when the lines end, before
    the response's last message, so the server span contains the generation's and its metrics are recorded by the
    time a client has read the whole answer. However the body stops (its end, an error, its client gone, a
    cancellation), leaving the ``async with`` is what closes the run."""

    def __init__(
        self,
        run: Run,
        bursts: Callable[[Run, PayloadStream], AsyncIterator[list[T]]],
        framing: Framing,
        media_type: str,
        drain: Drain,
        *,
        headers: dict[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self._run, self._bursts, self._framing, self._drain = run, bursts, framing, drain
        self._body = self._lines()
        super().__init__(self._body, media_type=media_type, headers=headers, background=background)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Until its first line, a client that leaves ends the wait (for a slot, for mistral.rs) at once; afterwards
        # the streaming response notices it at its next write.
        try:
            await cancel_on_disconnect(receive, partial(anext, self._body))
        except BaseException:
            await self._body.aclose()  # the client left as the first line became ready: leave the run
            raise
        await super().__call__(scope, receive, send)

    async def _lines(self) -> AsyncGenerator[bytes, None]:
        async with self._run as run:
            bursts = self._bursts(run, await run.open())
            first = await anext(bursts)
            yield b""  # ready: the first line is there (taken by ``__call__``, never sent)
            async for line in self._framing(_prepend(first, bursts), run.fail, self._drain):
                yield line


@dataclass(frozen=True, slots=True)
class Generations:
    """Runs generations against the upstream; the lifespan puts one on the application's state."""

    settings: Settings
    upstream: Upstream
    catalog: ModelCatalog
    observer: GenAIObserver
    limiter: Limiter
    drain: Drain
    quotas: Quotas = field(default_factory=Quotas)  # the tenants' limits (app/tenants/quotas.py)

    def run(self, *, route: Route, entry: Entry, body: dict[str, Any], clock: Clock | None = None) -> Run:
        if (cap := self.settings.max_output_tokens) > 0 and route != "embeddings":
            _cap_output(body, cap)
        return Run(self, route, entry, body, clock or Clock())

    async def ollama(
        self,
        request: Request,
        *,
        kind: Kind,
        route: Route,
        entry: Entry,
        body: dict[str, Any],
        requested: str,
        stream: bool,
        unload_after: bool,
        clock: Clock,
        conversation: list[dict[str, Any]] | None = None,
        top_logprobs: int | None = None,
    ) -> Response:
        """An Ollama chat or generate, in NDJSON lines as tokens arrive, or as one JSON answer."""
        run = self.run(route=route, entry=entry, body=body, clock=clock)
        # ``requested``: the name as the client sent it; ``conversation``: what a generate's ``context`` carries;
        # ``top_logprobs``: None unless the client asked for log probabilities.
        translation = OllamaStream(requested, kind, clock, conversation, top_logprobs, self.upstream.logprob_scale)
        after = BackgroundTask(self.unload, entry) if unload_after else None
        if stream:

            def replies(run: Run, payloads: PayloadStream) -> AsyncIterator[list[Reply]]:
                return to_ollama(run.observe(decode_chunks(payloads)), translation)

            return GenerationStream(run, replies, ndjson_lines, NDJSON_MEDIA_TYPE, self.drain, background=after)
        # One JSON answer from mistral.rs costs far less to relay than a stream of chunks.
        answer = await self._whole(request, run, _decode_answer)
        return json_response(translation.whole(answer), background=after)

    async def anthropic(
        self,
        request: Request,
        *,
        entry: Entry,
        body: dict[str, Any],
        requested: str,
        stream: bool,
        clock: Clock,
        estimated_input: int,
    ) -> Response:
        """An Anthropic message: the Ollama chat it translates to, its replies as Anthropic's events or message."""
        message = message_id()
        events = MessageEvents(message, requested, estimated_input).events if stream else None
        return await self._as_chat(request, entry=entry, body=body, requested=requested, clock=clock, events=events,
                                   failed=None, answer=partial(to_message, message))  # fmt: skip

    async def responses(
        self, request: Request, *, entry: Entry, body: dict[str, Any], asked: ResponsesRequest, clock: Clock
    ) -> Response:
        """An OpenAI response: the Ollama chat it translates to, its replies as the Responses API's events or
        response object."""
        response = response_id()
        converter = ResponseEvents(asked, response) if asked.stream is True else None
        return await self._as_chat(
            request, entry=entry, body=body, requested=asked.model, clock=clock,
            events=converter.events if converter else None, failed=converter.failed if converter else None,
            answer=partial(to_response, asked, response),
        )  # fmt: skip

    async def _as_chat(
        self,
        request: Request,
        *,
        entry: Entry,
        body: dict[str, Any],
        requested: str,
        clock: Clock,
        events: Callable[[ChatResponse], list[tuple[str, Any]]] | None,
        failed: Callable[[ProxyError], tuple[str, Any]] | None,
        answer: Callable[[ChatResponse], Any],
    ) -> Response:
        """Another API's request run as the Ollama chat it translates to: streamed, each reply becomes that API's
        named SSE events (``events``; ``failed``, its in-band error); whole, the chat's answer becomes its answer."""
        run = self.run(route="chat", entry=entry, body=body, clock=clock)
        translation = OllamaStream(requested, "chat", clock, None, None, self.upstream.logprob_scale)
        if events is not None:
            convert = events

            async def bursts(run: Run, payloads: PayloadStream) -> AsyncIterator[list[tuple[str, Any]]]:
                async for replies in to_ollama(run.observe(decode_chunks(payloads)), translation):
                    if burst := [event for reply in replies for event in convert(cast(ChatResponse, reply))]:
                        yield burst

            framing = sse_events if failed is None else partial(sse_events, failed=failed)
            headers = {"cache-control": "no-cache"}
            return GenerationStream(run, bursts, framing, SSE_MEDIA_TYPE, self.drain, headers=headers)
        whole = await self._whole(request, run, _decode_answer)
        return json_response(answer(cast(ChatResponse, translation.whole(whole))))

    async def relay(
        self, request: Request, *, route: Route, entry: Entry, body: dict[str, Any], requested: str
    ) -> Response:
        """The OpenAI pass-through: mistral.rs's answers, observed on the way, go out in the shape Ollama gives its
        own (embeddings as they came)."""
        run = self.run(route=route, entry=entry, body=body)
        if route == "embeddings":
            return Response(await self._whole(request, run, bytes), media_type="application/json")
        if body.get("stream") is True:

            async def events(run: Run, payloads: PayloadStream) -> AsyncIterator[list[bytes]]:
                async for burst in run.observe(aiter(payloads), _chunk_or_none):
                    yield [ollama_shaped(payload, requested) for payload in burst]

            headers = {"cache-control": "no-cache"}
            return GenerationStream(run, events, sse_lines, SSE_MEDIA_TYPE, self.drain, headers=headers)
        raw = await self._whole(request, run, bytes)
        return Response(ollama_shaped(raw, requested), media_type="application/json")

    async def _whole(self, request: Request, run: Run, decode: Callable[[bytes], T]) -> T:
        """A whole answer ends as a stream does: at its client's disconnect (waiting for a slot included), its
        deadline, or the drain's end."""

        async def answer() -> T:
            async with run:  # left with the error the client hears, so that both count it the same
                with self._ended_by_shutdown():
                    return decode(await run.post())

        with self.drain.track(), self._ended_by_shutdown():
            return await cancel_on_disconnect(request.receive, answer)

    @contextlib.contextmanager
    def _ended_by_shutdown(self) -> Iterator[None]:
        try:
            yield
        except asyncio.CancelledError:
            if not ended_by_shutdown(self.drain):
                raise
            raise ShuttingDown() from None

    async def embed(self, entry: Entry, inputs: list[str]) -> EmbeddingResponse:
        async with self.run(route="embeddings", entry=entry, body={"model": entry.id, "input": inputs}) as run:
            raw = await run.post()
        try:
            return _decode_embeddings(raw)
        except msgspec.MsgspecError:
            raise UpstreamProtocolError("mistral.rs sent a malformed embeddings response") from None

    async def load_or_unload(self, kind: Kind, entry: Entry, requested: str, unload: bool, clock: Clock) -> Response:
        """An empty prompt loads the model, and with ``keep_alive: 0`` unloads it (one JSON object)."""
        if unload:
            await self.unload(entry)
        else:
            await self.ensure_loaded(entry, clock, check=True)
        reply = _done_reply(kind, requested, "unload" if unload else "load")
        if clock.load:
            reply.load_duration = clock.load
            reply.total_duration = time.perf_counter_ns() - clock.start
        return json_response(reply)

    async def unload(self, entry: Entry) -> None:
        state = await self.upstream.manage_model("unload", entry.id)
        _raise_for_state(entry, state.status, state.error)
        self.catalog.set_status(entry.id, "unloaded")

    async def ensure_loaded(self, entry: Entry, clock: Clock, *, check: bool = False) -> None:
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


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes use, each part named and typed; the lifespan puts one on the application's state."""

    generations: Generations  # runs every generation and relay
    catalog: ModelCatalog  # Ollama names to mistral.rs models
    upstream: Upstream  # its health and model management, for the routes that pass them on
    bounds: Bounds  # how much one request may carry
    ollama_version: str  # what /api/version says


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _observe_answer(invocation: Invocation, raw: bytes, route: Route) -> None:
    try:
        if route == "embeddings":
            embeddings = _decode_embeddings(raw)
            usage = embeddings.usage
            invocation.on_embeddings(embeddings.model, usage.prompt_tokens if usage else None)
        else:
            answer = _decode_completion(raw)
            reasons = [choice.finish_reason for choice in answer.choices if choice.finish_reason]
            first = answer.choices[0] if answer.choices else None
            text = (first.message.content if first.message else first.text) if first else None
            invocation.on_response(answer.id, answer.model, reasons, answer.usage, text)
    except msgspec.MsgspecError:
        pass  # relayed as it came; telemetry just learns less


def _decode_answer(raw: bytes) -> ChatCompletionChunk:
    try:
        completion = _decode_completion(raw)
    except msgspec.MsgspecError:
        raise UpstreamProtocolError("mistral.rs sent a malformed answer") from None
    if not completion.choices:  # valid JSON that answers nothing: an answer lost, not an empty one
        raise UpstreamProtocolError("mistral.rs sent an answer without choices")
    return completion.as_chunk()


def _cap_output(body: dict[str, Any], cap: int) -> None:
    """MAX_OUTPUT_TOKENS: a request asking more, or no limit at all (Ollama's num_predict -1, most clients' default),
    gets ``cap``, and ends with done_reason length as if it had asked for it."""
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    asked = body.get(key)
    if not isinstance(asked, int) or isinstance(asked, bool) or asked <= 0 or asked > cap:
        body[key] = cap


def _chunk_or_none(payload: bytes) -> ChatCompletionChunk | None:
    try:
        return _decode_chunk(payload)
    except msgspec.MsgspecError:
        return None


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


async def _prepend(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    yield first
    async for item in rest:
        yield item
