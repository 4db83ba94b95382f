"""The route table: every Ollama route a client calls, plus the OpenAI-compatible pass-through."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from app.responses import json_response
from app.routes import generation, models, openai

__all__ = ["ROUTES"]


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def health(request: Request) -> Response:
    return PlainTextResponse("OK")  # mistral.rs's liveness answer, for a proxy chained behind another


async def version(request: Request) -> Response:
    return json_response({"version": request.app.state.service.settings.ollama_version})


ROUTES: list[BaseRoute] = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/api/version", version, methods=["GET", "HEAD"]),
    Route("/health", health, methods=["GET", "HEAD"]),
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
    Route("/v1/models/{action}", openai.manage_model, methods=["POST"]),
]
