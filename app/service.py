"""What a generation does between parsing and responding: load, unload, stream, collect."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from app.catalog import Entry, ModelCatalog
from app.errors import ModelNotFound, UpstreamError
from app.ollama import AssistantMessage, ChatResponse, GenerateResponse
from app.responses import cancel_on_disconnect, json_response, ndjson_lines, ndjson_response
from app.settings import Settings
from app.translate.stream import Clock, Kind, OllamaStream, Reply, collect, decode_chunks, rfc3339_utc, to_ollama
from app.upstream import PayloadStream, Route, Upstream

__all__ = ["Generation", "Service", "owning"]


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

    async def generate(self, request: Request, generation: Generation) -> Response:
        await self._ensure_loaded(generation.entry, generation.clock)
        payloads = await self._open(generation)
        ollama = OllamaStream(generation.requested, generation.kind, generation.clock)
        replies = to_ollama(decode_chunks(payloads), ollama)
        background = BackgroundTask(self.unload, generation.entry) if generation.unload_after else None
        if generation.stream:
            return ndjson_response(owning(payloads, ndjson_lines(replies)), background)
        reply = await cancel_on_disconnect(request.receive, lambda: _collect_owning(payloads, replies))
        return json_response(reply, background=background)

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
            state = await self.upstream.manage_model("reload", entry.id)
            _raise_for_state(entry, state.status, state.error)
            clock.load = time.perf_counter_ns() - started
            self.catalog.set_status(entry.id, "loaded")

    async def _open(self, generation: Generation) -> PayloadStream:
        generation.clock.upstream = time.perf_counter_ns()
        try:
            return await self.upstream.open_stream(generation.route, generation.body)
        except ModelNotFound:
            raise ModelNotFound(generation.requested) from None


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


async def owning(payloads: PayloadStream, lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The one generator that owns the upstream response: however the stream ends, it is released."""
    try:
        async for line in lines:
            yield line
    finally:
        await payloads.aclose()


async def _collect_owning(payloads: PayloadStream, replies: AsyncIterator[Reply]) -> Reply:
    try:
        return await collect(replies)
    finally:
        await payloads.aclose()
