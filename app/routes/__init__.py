"""The route table: every Ollama route a client calls, plus the OpenAI-compatible pass-through."""

from __future__ import annotations

import asyncio
from typing import get_args

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from app.openapi import document
from app.responses import json_response
from app.routes import generation, models, openai
from app.upstream.schema import ModelAction

__all__ = ["ROUTES"]

_READY_TIMEOUT = 3.0


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def health(request: Request) -> Response:
    return PlainTextResponse("OK")  # mistral.rs's liveness answer, for a proxy chained behind another


async def ready(request: Request) -> Response:
    """Readiness: can mistral.rs (or the in-process model) serve right now?"""
    service = request.app.state.service
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            up = await service.upstream.health()
    except Exception:  # unreachable, timed out or failing: all mean "not ready"
        up = False
    body = {"status": "ready" if up else "not ready", "upstream": "up" if up else "down"}
    return json_response(body, 200 if up else 503)


async def openapi(request: Request) -> Response:
    return json_response(document())


async def version(request: Request) -> Response:
    return json_response({"version": request.app.state.service.settings.ollama_version})


ROUTES: list[BaseRoute] = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/api/version", version, methods=["GET", "HEAD"]),
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/ready", ready, methods=["GET", "HEAD"]),
    Route("/api/tags", models.list_tags, methods=["GET", "HEAD"]),
    Route("/api/ps", models.list_running, methods=["GET"]),
    Route("/api/show", models.show, methods=["POST"]),
    Route("/api/pull", models.pull, methods=["POST"]),
    Route("/api/push", models.push, methods=["POST"]),
    Route("/api/create", models.create, methods=["POST"]),
    Route("/api/copy", models.copy, methods=["POST"]),
    Route("/api/delete", models.delete, methods=["DELETE"]),
    Route("/api/blobs/{digest}", models.blob, methods=["HEAD", "POST"]),
    Route("/api/chat", generation.chat, methods=["POST"]),
    Route("/api/generate", generation.generate, methods=["POST"]),
    Route("/api/embed", generation.embed, methods=["POST"]),
    Route("/api/embeddings", generation.embeddings, methods=["POST"]),
    Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
    Route("/v1/completions", openai.completions, methods=["POST"]),
    Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
    Route("/v1/models", openai.list_models, methods=["GET"]),
    # Explicit paths, as mistral.rs's own: OpenAPI counts /v1/models/{action} and /v1/models/{model} as one path.
    *(Route(f"/v1/models/{action}", openai.manage_model, methods=["POST"]) for action in get_args(ModelAction)),
    Route("/v1/models/{model:path}", openai.retrieve_model, methods=["GET"]),
    Route("/api/openapi.json", openapi, methods=["GET"]),
]
