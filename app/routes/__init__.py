"""The route table: every Ollama route a client calls, plus the OpenAI-compatible pass-through, each with its
OpenAPI description (``GET /api/openapi.json`` is built from this table)."""

from __future__ import annotations

from typing import get_args

from starlette.routing import BaseRoute

from app.anthropic import MessagesRequest, MessagesResponse
from app.http.responses import NDJSON_MEDIA_TYPE, SSE_MEDIA_TYPE
from app.ollama import (
    ChatRequest,
    ChatResponse,
    CopyRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    GenerateResponse,
    ListResponse,
    ModelRequest,
    ProcessResponse,
    ShowResponse,
)
from app.openai import ResponsesRequest
from app.routes import anthropic, generation, management, openai, responses, system
from app.routes.openapi import OBJECT, Doc, DocumentedRoute, Error, Readiness, Version
from app.upstream import ModelAction

__all__ = ["ROUTES"]

_Route = DocumentedRoute
_PULL_PROGRESS = {"type": "object", "properties": {"status": {"type": "string"}}}

ROUTES: list[BaseRoute] = [
    _Route("/", system.root, ["GET", "HEAD"], Doc("Liveness: `Ollama is running`", response="Ollama is running")),
    _Route("/api/version", system.version, ["GET", "HEAD"],
           Doc("The Ollama API version the proxy speaks", response=Version)),
    _Route("/health", system.health, ["GET", "HEAD"], Doc("Liveness as mistral.rs answers it", response="OK")),
    _Route("/ready", system.ready, ["GET", "HEAD"],
           Doc("Readiness: can mistral.rs (or the in-process model) serve? (503 if not)", response=Readiness,
               also=("503", "Not ready"))),
    _Route("/api/tags", management.list_tags, ["GET", "HEAD"],
           Doc("The models mistral.rs serves", response=ListResponse)),
    _Route("/api/ps", management.list_running, ["GET"], Doc("The models loaded now", response=ProcessResponse)),
    _Route("/api/show", management.show, ["POST"], Doc("One model's details", ModelRequest, ShowResponse)),
    _Route("/api/pull", management.pull, ["POST"],
           Doc("Succeeds for a model mistral.rs serves (it cannot download)", ModelRequest, _PULL_PROGRESS,
               NDJSON_MEDIA_TYPE)),
    _Route("/api/push", management.push, ["POST"], Doc("Not supported: 501", ModelRequest, Error)),
    _Route("/api/create", management.create, ["POST"], Doc("Not supported: 501", None, Error)),
    _Route("/api/copy", management.copy, ["POST"], Doc("Not supported: 501", CopyRequest, Error)),
    _Route("/api/delete", management.delete, ["DELETE"], Doc("Not supported: 501", ModelRequest, Error)),
    _Route("/api/blobs/{digest}", management.blob, ["HEAD", "POST"],
           Doc("No blob exists: 404", method="head"), Doc("Not supported: 501", None, Error, method="post")),
    _Route("/api/chat", generation.chat, ["POST"],
           Doc("Chat; streamed as NDJSON unless `stream` is false", ChatRequest, ChatResponse, NDJSON_MEDIA_TYPE)),
    _Route("/api/generate", generation.generate, ["POST"],
           Doc("Completion; streamed as NDJSON unless `stream` is false", GenerateRequest, GenerateResponse,
               NDJSON_MEDIA_TYPE)),
    _Route("/api/embed", generation.embed, ["POST"],
           Doc("Embeddings of one or more inputs", EmbedRequest, EmbedResponse)),
    _Route("/api/embeddings", generation.embeddings, ["POST"],
           Doc("Embedding of one prompt (legacy)", EmbeddingsRequest, EmbeddingsResponse)),
    _Route("/v1/chat/completions", openai.chat_completions, ["POST"],
           Doc("OpenAI chat completions, passed through to mistral.rs", OBJECT, OBJECT, SSE_MEDIA_TYPE)),
    _Route("/v1/completions", openai.completions, ["POST"],
           Doc("OpenAI completions, passed through to mistral.rs", OBJECT, OBJECT, SSE_MEDIA_TYPE)),
    _Route("/v1/embeddings", openai.embeddings, ["POST"],
           Doc("OpenAI embeddings, passed through to mistral.rs", OBJECT, OBJECT)),
    _Route("/v1/messages", anthropic.messages, ["POST"],
           Doc("Anthropic Messages, run as an Ollama chat; streamed as Anthropic's SSE events if `stream` is true",
               MessagesRequest, MessagesResponse, SSE_MEDIA_TYPE)),
    _Route("/v1/responses", responses.responses, ["POST"],
           Doc("OpenAI Responses, run as an Ollama chat; streamed as its SSE events if `stream` is true",
               ResponsesRequest, OBJECT, SSE_MEDIA_TYPE)),
    _Route("/v1/models", openai.list_models, ["GET"], Doc("mistral.rs's model list, as it sends it", response=OBJECT)),
    # Explicit paths, as mistral.rs's own: OpenAPI counts /v1/models/{action} and /v1/models/{model} as one path.
    *(_Route(f"/v1/models/{action}", openai.manage_model, ["POST"],
             Doc(f"mistral.rs model management: {action}", OBJECT, OBJECT)) for action in get_args(ModelAction)),
    _Route("/v1/models/{model:path}", openai.retrieve_model, ["GET"],
           Doc("One model, in OpenAI's shape (404 if mistral.rs does not serve it)", response=OBJECT)),
    _Route("/api/openapi.json", system.openapi, ["GET"], Doc("This document", response=OBJECT)),
]  # fmt: skip
