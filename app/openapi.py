"""A machine-readable description of the served API (OpenAPI 3.1), built from the msgspec structs that parse it.

Served at ``GET /api/openapi.json``; ``tests/test_openapi.py`` keeps it in step with the route table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from typing import Any, get_args

import msgspec

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
from app.responses import NDJSON_MEDIA_TYPE, SSE_MEDIA_TYPE
from app.upstream.schema import ModelAction

__all__ = ["OPERATIONS", "Operation", "document"]

_REF = "#/components/schemas/{name}"
_OBJECT: dict[str, Any] = {"type": "object"}  # mistral.rs's own OpenAI shapes, passed through as they are


class Error(msgspec.Struct):
    """Every error answer, as Ollama sends it."""

    error: str


class OpenAIErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(msgspec.Struct):
    """Every error answer of the ``/v1`` routes, as OpenAI's clients read it."""

    error: OpenAIErrorBody


class Version(msgspec.Struct):
    version: str


class Readiness(msgspec.Struct):
    status: str
    upstream: str


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    summary: str
    request: Any = None  # a struct, or None for no body
    response: Any = None  # a struct, a schema dict, or a plain-text example string
    streams: str | None = None  # the media type of the streamed form (``stream: true``)
    also: tuple[str, str] | None = None  # (status, description) of another answer with the same shape


OPERATIONS: tuple[Operation, ...] = (
    Operation("/", "get", "Liveness: `Ollama is running`", response="Ollama is running"),
    Operation("/health", "get", "Liveness as mistral.rs answers it", response="OK"),
    Operation("/ready", "get", "Readiness: can mistral.rs (or the in-process model) serve? (503 if not)",
              response=Readiness, also=("503", "Not ready")),
    Operation("/api/version", "get", "The Ollama API version the proxy speaks", response=Version),
    Operation("/api/tags", "get", "The models mistral.rs serves", response=ListResponse),
    Operation("/api/ps", "get", "The models loaded now", response=ProcessResponse),
    Operation("/api/show", "post", "One model's details", ModelRequest, ShowResponse),
    Operation("/api/pull", "post", "Succeeds for a model mistral.rs serves (it cannot download)", ModelRequest,
              {"type": "object", "properties": {"status": {"type": "string"}}}, NDJSON_MEDIA_TYPE),
    Operation("/api/push", "post", "Not supported: 501", ModelRequest, Error),
    Operation("/api/create", "post", "Not supported: 501", None, Error),
    Operation("/api/copy", "post", "Not supported: 501", CopyRequest, Error),
    Operation("/api/delete", "delete", "Not supported: 501", ModelRequest, Error),
    Operation("/api/blobs/{digest}", "head", "No blob exists: 404", None, None),
    Operation("/api/blobs/{digest}", "post", "Not supported: 501", None, Error),
    Operation("/api/chat", "post", "Chat; streamed as NDJSON unless `stream` is false", ChatRequest, ChatResponse,
              NDJSON_MEDIA_TYPE),
    Operation("/api/generate", "post", "Completion; streamed as NDJSON unless `stream` is false", GenerateRequest,
              GenerateResponse, NDJSON_MEDIA_TYPE),
    Operation("/api/embed", "post", "Embeddings of one or more inputs", EmbedRequest, EmbedResponse),
    Operation("/api/embeddings", "post", "Embedding of one prompt (legacy)", EmbeddingsRequest, EmbeddingsResponse),
    Operation("/v1/chat/completions", "post", "OpenAI chat completions, passed through to mistral.rs", _OBJECT,
              _OBJECT, SSE_MEDIA_TYPE),
    Operation("/v1/completions", "post", "OpenAI completions, passed through to mistral.rs", _OBJECT, _OBJECT,
              SSE_MEDIA_TYPE),
    Operation("/v1/embeddings", "post", "OpenAI embeddings, passed through to mistral.rs", _OBJECT, _OBJECT),
    Operation("/v1/models", "get", "mistral.rs's model list, as it sends it", response=_OBJECT),
    *(Operation(f"/v1/models/{action}", "post", f"mistral.rs model management: {action}", _OBJECT, _OBJECT)
      for action in get_args(ModelAction)),
    Operation("/v1/models/{model}", "get", "One model, in OpenAI's shape (404 if mistral.rs does not serve it)",
              response=_OBJECT),
    Operation("/api/openapi.json", "get", "This document", response=_OBJECT),
)  # fmt: skip


# These handlers answer Ollama's "model is required" for a missing or empty model; their structs default it to ""
# so that the message is Ollama's. The description states the rule itself. (show, pull, push and delete take
# ``model`` or the legacy ``name``: neither is required alone.)
_MODEL_REQUIRED = (ChatRequest, GenerateRequest, EmbedRequest, EmbeddingsRequest)


def _require_model(components: dict[str, Any]) -> None:
    for struct in _MODEL_REQUIRED:
        schema = components[struct.__name__]
        schema["properties"]["model"] = {"type": "string", "minLength": 1}
        schema["required"] = sorted({*schema.get("required", ()), "model"})


@cache
def document() -> dict[str, Any]:
    structs = sorted(
        {op.request for op in OPERATIONS if isinstance(op.request, type)}
        | {op.response for op in OPERATIONS if isinstance(op.response, type)}
        | {Error, OpenAIError},
        key=lambda struct: struct.__name__,
    )
    refs, components = msgspec.json.schema_components(structs, ref_template=_REF)
    _require_model(components)
    by_struct = dict(zip(structs, refs, strict=True))

    def schema_of(value: Any) -> dict[str, Any]:
        return by_struct[value] if isinstance(value, type) else value

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mistral-ollama-proxy",
            "version": version("mistral-ollama-proxy"),
            "description": "The Ollama API (and mistral.rs's OpenAI-compatible routes) in front of mistral.rs.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }


def _operation(op: Operation, schema_of: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": op.summary, "responses": _responses(op, schema_of)}
    if "{" in op.path:
        name = op.path.split("{", 1)[1].split("}", 1)[0]
        described["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]
    if op.request is not None:
        content = {"application/json": {"schema": schema_of(op.request)}}
        described["requestBody"] = {"required": True, "content": content}
    return described


def _responses(op: Operation, schema_of: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    shape = OpenAIError if op.path.startswith("/v1/") else Error
    error = {"description": "An error", "content": {"application/json": {"schema": schema_of(shape)}}}
    if op.response is Error:  # a bad body or an unknown model is still answered first
        return {"4XX": error, "501": {**error, "description": "Not supported by mistral.rs"}}
    if op.response is None:
        return {"404": {"description": "Not found"}}
    if isinstance(op.response, str):
        return {"200": {"description": "OK", "content": {"text/plain": {"example": op.response}}}}
    schema = schema_of(op.response)
    content = {"application/json": {"schema": schema}}
    if op.streams is not None:
        # NDJSON: one object per line, the last with `done: true`; SSE: `data:` events, then `data: [DONE]`
        content[op.streams] = {"schema": schema}
    answers = {"200": {"description": "OK", "content": content}, "4XX": error, "5XX": error}
    if op.also is not None:
        status, description = op.also
        answers[status] = {"description": description, "content": content}
    return answers
