"""``/api/chat``, ``/api/generate``, ``/api/embed`` and ``/api/embeddings``."""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.responses import Response

from app.bounds import Bounds
from app.errors import InvalidRequest, ModelRequired
from app.generation import Generations, generations_of
from app.http.body import parse_body
from app.http.responses import json_response
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
from app.ollama.translate.options import keep_alive_seconds, model_options
from app.ollama.translate.requests import (
    chat_request_to_openai,
    check_thinking,
    check_top_logprobs,
    generate_conversation,
    generate_request_to_openai,
    requested_top_logprobs,
)
from app.upstream.wire import EmbeddingResponse
from otel.clock import Clock

__all__ = ["chat", "embed", "embeddings", "generate"]


def _check(bounds: Bounds, messages: list[Message], options: Options | None) -> None:
    """Counts first, each cheap, and only then the images' sizes."""
    bounds.count("messages", len(messages), bounds.messages)
    bounds.count("images", sum(len(message.images or ()) for message in messages), bounds.images)
    for message in messages:
        bounds.count("tool calls in a message", len(message.tool_calls or ()), bounds.tools)
    stop = options.stop if options is not None else None
    bounds.count("stop sequences", len(stop) if isinstance(stop, list) else 0, bounds.stop)
    bounds.check_images(image for message in messages for image in message.images or ())


async def chat(request: Request) -> Response:
    clock = Clock()
    body = await parse_body(request, ChatRequest)
    check_top_logprobs(body.top_logprobs)
    if not body.model:
        raise ModelRequired()
    unload = keep_alive_seconds(body.keep_alive) == 0
    generations = generations_of(request)
    messages, bounds = body.messages or [], generations.settings.bounds
    bounds.count("tools", len(body.tools or ()), bounds.tools)
    _check(bounds, messages, body.options)
    entry = await generations.catalog.resolve(body.model)
    check_thinking(body.think, body.model, entry.id)
    if not messages:
        return await generations.load_or_unload("chat", entry, body.model, unload, clock)
    defaults, renders_tools = model_options(entry.card.parameters), entry.card.tools is not False
    upstream_body = chat_request_to_openai(body, entry.id, defaults, renders_tools=renders_tools)
    return await generations.ollama(
        request, kind="chat", route="chat", entry=entry, body=upstream_body,
        requested=body.model, stream=body.stream is not False, unload_after=unload, clock=clock,
        top_logprobs=requested_top_logprobs(body),
    )  # fmt: skip


async def generate(request: Request) -> Response:
    clock = Clock()
    body = await parse_body(request, GenerateRequest)
    check_top_logprobs(body.top_logprobs)
    if not body.model:
        raise ModelRequired()
    unload = keep_alive_seconds(body.keep_alive) == 0
    generations = generations_of(request)
    _check(generations.settings.bounds, [Message(role="user", images=body.images)], body.options)
    entry = await generations.catalog.resolve(body.model)
    check_thinking(body.think, body.model, entry.id)
    if not body.prompt and not body.suffix and not body.images:
        return await generations.load_or_unload("generate", entry, body.model, unload, clock)
    route, upstream_body = generate_request_to_openai(body, entry.id, model_options(entry.card.parameters))
    return await generations.ollama(
        request, kind="generate", route=route, entry=entry, body=upstream_body, requested=body.model,
        stream=body.stream is not False, unload_after=unload, clock=clock, conversation=generate_conversation(body),
        top_logprobs=requested_top_logprobs(body),
    )  # fmt: skip


async def _embed(generations: Generations, model: str, inputs: list[str]) -> EmbeddingResponse:
    entry = await generations.catalog.resolve(model, f'model "{model}" not found, try pulling it first')
    return await generations.embed(entry, inputs) if inputs else EmbeddingResponse(data=[])


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
    generations = generations_of(request)
    generations.settings.bounds.count("inputs", len(inputs), generations.settings.bounds.inputs)
    response = await _embed(generations, body.model, inputs)
    reply = EmbedResponse(model=body.model, embeddings=_vectors(response, body.dimensions))
    reply.total_duration = time.perf_counter_ns() - start
    if response.usage is not None:
        reply.prompt_eval_count = response.usage.prompt_tokens
    return json_response(reply)


async def embeddings(request: Request) -> Response:
    body = await parse_body(request, EmbeddingsRequest)
    if not body.model:
        raise ModelRequired()
    vectors = _vectors(await _embed(generations_of(request), body.model, [body.prompt] if body.prompt else []), None)
    return json_response(EmbeddingsResponse(embedding=vectors[0] if vectors else []))
