"""A machine-readable description of the served API (OpenAPI 3.1), built from the route table's ``Doc`` entries
and the msgspec structs that parse requests.

Served at ``GET /api/openapi.json``; ``tests/routes/test_openapi.py`` checks that every route is described.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Route

from app.ollama import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest

__all__ = ["OBJECT", "Doc", "DocumentedRoute", "Error", "Readiness", "Version", "document"]

_REF = "#/components/schemas/{name}"
OBJECT: dict[str, Any] = {"type": "object"}  # mistral.rs's own OpenAI shapes, passed through as they are


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


class AnthropicErrorBody(msgspec.Struct):
    type: str
    message: str


class AnthropicError(msgspec.Struct):
    """Every error answer of ``/v1/messages``, as Anthropic's clients read it."""

    type: str
    error: AnthropicErrorBody
    request_id: str


class Version(msgspec.Struct):
    version: str


class Readiness(msgspec.Struct):
    status: str
    upstream: str


@dataclass(frozen=True)
class Doc:
    """How one method of a route is described: ``method`` defaults to the route's first (GET before HEAD)."""

    summary: str
    request: Any = None  # a struct, or None for no body
    response: Any = None  # a struct, a schema dict, or a plain-text example string
    streams: str | None = None  # the media type of the streamed form (``stream: true``)
    also: tuple[str, str] | None = None  # (status, description) of another answer with the same shape
    method: str | None = None


class DocumentedRoute(Route):
    """A Starlette route that carries its OpenAPI description, so that the route table is the one list."""

    def __init__(self, path: str, endpoint: Callable[..., Any], methods: list[str], *docs: Doc) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.docs = docs or (Doc(""),)


# These handlers answer Ollama's "model is required" for a missing or empty model; their structs default it to ""
# so that the message is Ollama's. The description states the rule itself. (show, pull, push and delete take
# ``model`` or the legacy ``name``: neither is required alone.)
_MODEL_REQUIRED = (ChatRequest, GenerateRequest, EmbedRequest, EmbeddingsRequest)


def _require_model(components: dict[str, Any]) -> None:
    for struct in _MODEL_REQUIRED:
        schema = components[struct.__name__]
        schema["properties"]["model"] = {"type": "string", "minLength": 1}
        schema["required"] = sorted({*schema.get("required", ()), "model"})


def _operations(routes: list[BaseRoute]) -> list[tuple[str, str, Doc]]:
    """(path, method, doc) of every documented route; path converters (``{model:path}``) are not OpenAPI's."""
    found = []
    for route in routes:
        if isinstance(route, DocumentedRoute):
            path = route.path.replace(":path}", "}")
            default = next(method for method in ("GET", "POST", "DELETE", "HEAD") if method in (route.methods or ()))
            found += [(path, (doc.method or default).lower(), doc) for doc in route.docs]
    return found


@cache
def document() -> dict[str, Any]:
    from app.routes import ROUTES  # the table imports this module for ``Doc``

    operations = _operations(ROUTES)
    structs = sorted(
        {doc.request for _, _, doc in operations if isinstance(doc.request, type)}
        | {doc.response for _, _, doc in operations if isinstance(doc.response, type)}
        | {Error, OpenAIError, AnthropicError},
        key=lambda struct: struct.__name__,
    )
    refs, components = msgspec.json.schema_components(structs, ref_template=_REF)
    _require_model(components)
    by_struct = dict(zip(structs, refs, strict=True))

    def schema_of(value: Any) -> dict[str, Any]:
        return by_struct[value] if isinstance(value, type) else value

    paths: dict[str, dict[str, Any]] = {}
    for path, method, doc in operations:
        paths.setdefault(path, {})[method] = _operation(path, doc, schema_of)
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


def _operation(path: str, op: Doc, schema_of: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": op.summary, "responses": _responses(path, op, schema_of)}
    if "{" in path:
        name = path.split("{", 1)[1].split("}", 1)[0]
        described["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]
    if op.request is not None:
        content = {"application/json": {"schema": schema_of(op.request)}}
        described["requestBody"] = {"required": True, "content": content}
    return described


def _responses(path: str, op: Doc, schema_of: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    shape = AnthropicError if path.startswith("/v1/messages") else OpenAIError if path.startswith("/v1/") else Error
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
