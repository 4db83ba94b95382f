"""``/api/chat``, ``/api/generate``, ``/api/embed`` and ``/api/embeddings``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from app.bounds import Bounds
from app.errors import InvalidRequest, ModelRequired
from app.generation import Generations, Services, services_of
from app.http.body import parse_body
from app.http.responses import json_response
from app.models import Entry
from app.ollama import (
    ChatRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    Message,
    Options,
)
from app.ollama.common import KeepAlive, Think
from app.ollama.translate.options import keep_alive_seconds, model_options
from app.ollama.translate.requests import (
    chat_request_to_openai,
    check_thinking,
    check_tools,
    check_top_logprobs,
    generate_conversation,
    generate_request_to_openai,
    requested_top_logprobs,
)
from app.upstream.wire import EmbeddingResponse
from otel.clock import Clock

__all__ = ["chat", "check_bounds", "embed", "embeddings", "generate"]


def check_bounds(bounds: Bounds, messages: list[Message], options: Options | None) -> None:
    """Counts first, each cheap, and only then the images' sizes."""
    bounds.count("messages", len(messages), bounds.messages)
    bounds.count("images", sum(len(message.images or ()) for message in messages), bounds.images)
    for message in messages:
        bounds.count("tool calls in a message", len(message.tool_calls or ()), bounds.tools)
    stop = options.stop if options is not None else None
    bounds.count("stop sequences", len(stop) if isinstance(stop, list) else 0, bounds.stop)
    bounds.check_images(image for message in messages for image in message.images or ())


class _Generation(Protocol):
    """What chat and generate requests share, read before either is translated."""

    @property
    def model(self) -> str: ...
    @property
    def keep_alive(self) -> KeepAlive: ...
    @property
    def options(self) -> Options | None: ...
    @property
    def think(self) -> Think: ...
    @property
    def top_logprobs(self) -> int | None: ...


G = TypeVar("G", bound=_Generation)


@dataclass(frozen=True)
class _Opened(Generic[G]):
    body: G
    clock: Clock
    generations: Generations
    entry: Entry
    unload: bool  # keep_alive 0: unload the model once answered


async def _open(
    request: Request, kind: type[G], messages: Callable[[G], list[Message]], tools: Callable[[G], int]
) -> _Opened[G]:
    """Chat's and generate's preamble: decode, check what is cheap, bound every list, then resolve the model."""
    clock = Clock()
    body = await parse_body(request, kind)
    check_top_logprobs(body.top_logprobs)
    if not body.model:
        raise ModelRequired()
    unload = keep_alive_seconds(body.keep_alive) == 0
    services = services_of(request)
    bounds = services.bounds
    bounds.count("tools", tools(body), bounds.tools)
    check_bounds(bounds, messages(body), body.options)
    entry = await services.catalog.resolve(body.model)
    check_thinking(body.think, body.model, entry.id, entry.card)
    return _Opened(body, clock, services.generations, entry, unload)


async def chat(request: Request) -> Response:
    opened = await _open(request, ChatRequest, lambda body: body.messages or [], lambda body: len(body.tools or ()))
    body, generations, entry = opened.body, opened.generations, opened.entry
    if not body.messages:
        return await generations.load_or_unload("chat", entry, body.model, opened.unload, opened.clock)
    check_tools(body.tools, body.model, entry.card)
    upstream_body = chat_request_to_openai(body, entry.id, model_options(entry.card.parameters))
    return await generations.ollama(
        request, kind="chat", route="chat", entry=entry, body=upstream_body, requested=body.model,
        stream=body.stream is not False, unload_after=opened.unload, clock=opened.clock,
        top_logprobs=requested_top_logprobs(body),
    )  # fmt: skip


async def generate(request: Request) -> Response:
    opened = await _open(request, GenerateRequest, lambda body: [Message(role="user", images=body.images)],
                         lambda _: 0)  # fmt: skip
    body, generations, entry = opened.body, opened.generations, opened.entry
    if not body.prompt and not body.suffix and not body.images:
        return await generations.load_or_unload("generate", entry, body.model, opened.unload, opened.clock)
    route, upstream_body = generate_request_to_openai(body, entry.id, model_options(entry.card.parameters))
    return await generations.ollama(
        request, kind="generate", route=route, entry=entry, body=upstream_body, requested=body.model,
        stream=body.stream is not False, unload_after=opened.unload, clock=opened.clock,
        conversation=generate_conversation(body), top_logprobs=requested_top_logprobs(body),
    )  # fmt: skip


async def _embed(services: Services, model: str, inputs: list[str]) -> EmbeddingResponse:
    entry = await services.catalog.resolve(model, f'model "{model}" not found, try pulling it first')
    return await services.generations.embed(entry, inputs) if inputs else EmbeddingResponse(data=[])


def _vectors(response: EmbeddingResponse, dimensions: int | None) -> list[list[float]]:
    vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
    return [_truncate(vector, dimensions) for vector in vectors] if dimensions else vectors


def _truncate(vector: list[float], dimensions: int) -> list[float]:
    """Ollama shortens to ``dimensions`` and re-normalises to unit length."""
    head = vector[:dimensions]
    norm = math.sqrt(sum(value * value for value in head)) or 1.0
    return [value / norm for value in head]


async def embed(request: Request) -> Response:
    start = time.perf_counter_ns()
    body = await parse_body(request, EmbedRequest)
    if not body.model:
        raise ModelRequired()
    if body.dimensions is not None and body.dimensions <= 0:
        raise InvalidRequest("dimensions must be a positive number")
    inputs = [body.input] if isinstance(body.input, str) else body.input or []
    services = services_of(request)
    services.bounds.count("inputs", len(inputs), services.bounds.inputs)
    response = await _embed(services, body.model, inputs)
    reply = EmbedResponse(model=body.model, embeddings=_vectors(response, body.dimensions))
    reply.total_duration = time.perf_counter_ns() - start
    if response.usage is not None:
        reply.prompt_eval_count = response.usage.prompt_tokens
    return json_response(reply)


async def embeddings(request: Request) -> Response:
    body = await parse_body(request, EmbeddingsRequest)
    if not body.model:
        raise ModelRequired()
    vectors = _vectors(await _embed(services_of(request), body.model, [body.prompt] if body.prompt else []), None)
    return json_response(EmbeddingsResponse(embedding=vectors[0] if vectors else []))
