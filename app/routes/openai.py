"""The OpenAI-compatible routes, relayed to mistral.rs (which is OpenAI-native) with model names mapped, its answers
in Ollama's shape (app/openai/shape.py)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app.bounds import Bounds
from app.errors import InvalidRequest
from app.generation import services_of
from app.http.body import parse_body
from app.http.responses import json_response
from app.models import Entry
from app.upstream import ModelAction, Route

__all__ = ["chat_completions", "completions", "embeddings", "list_models", "manage_model", "retrieve_model"]


class _ModelId(msgspec.Struct):
    model_id: str


def _check(bounds: Bounds, body: dict[str, Any]) -> None:
    """The bounds of /api/chat on OpenAI's shapes; mistral.rs answers for anything else malformed."""
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    bounds.count("messages", len(messages), bounds.messages)
    contents = [message["content"] for message in messages
                if isinstance(message, dict) and isinstance(message.get("content"), list)]  # fmt: skip
    for parts in contents:
        bounds.count("content parts in a message", len(parts), bounds.content_parts)
    images = [
        part for parts in contents for part in parts if isinstance(part, dict) and part.get("type") == "image_url"
    ]
    bounds.count("images", len(images), bounds.images)
    lists = (
        ("tools", "tools", bounds.tools),
        ("stop", "stop sequences", bounds.stop),
        ("input", "inputs", bounds.inputs),
    )
    for key, what, limit in lists:
        found = body.get(key)
        bounds.count(what, len(found) if isinstance(found, list) else 0, limit)
    bounds.check_images(_inline(images))


def _inline(parts: list[dict[str, Any]]) -> list[str]:
    """The base64 payloads of ``data:`` image URLs, which MAX_IMAGE_BYTES bounds as it does Ollama's images."""
    urls = [part["image_url"].get("url") for part in parts if isinstance(part.get("image_url"), dict)]
    return [url.partition(",")[2] for url in urls if isinstance(url, str) and url.startswith("data:")]


async def _relay(request: Request, route: Route) -> Response:
    body = await parse_body(request, dict[str, Any])
    name = body.get("model", "default")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("model must be a non-empty string")
    services = services_of(request)
    _check(services.bounds, body)
    entry = await services.catalog.resolve(name)
    body["model"] = entry.id
    return await services.generations.relay(request, route=route, entry=entry, body=body, requested=name)


async def chat_completions(request: Request) -> Response:
    return await _relay(request, "chat")


async def completions(request: Request) -> Response:
    return await _relay(request, "completion")


async def embeddings(request: Request) -> Response:
    return await _relay(request, "embeddings")


def _model(entry: Entry) -> dict[str, Any]:
    return {"id": entry.name, "object": "model", "created": entry.card.created, "owned_by": "mistral.rs"}


async def list_models(request: Request) -> Response:
    entries = await services_of(request).catalog.entries(fresh=True)
    return json_response({"object": "list", "data": [_model(entry) for entry in entries]})


async def retrieve_model(request: Request) -> Response:
    """OpenAI's ``models.retrieve``, as Ollama serves it (ids may hold a slash: ``Qwen/Qwen3-4B``)."""
    entry = await services_of(request).catalog.resolve(request.path_params["model"])
    return json_response(_model(entry))


async def manage_model(request: Request) -> Response:
    """mistral.rs's model management (``/v1/models/{status,unload,reload}``), so that this proxy can itself stand
    in for a mistral.rs server."""
    action: ModelAction = request.url.path.rsplit("/", 1)[1]  # type: ignore[assignment]  # the route names it
    body = await parse_body(request, _ModelId)
    services = services_of(request)
    if (entry := await services.catalog.find(body.model_id)) is None:
        return json_response({"model_id": body.model_id, "status": "not_found"})
    state = await services.upstream.manage_model(action, entry.id)
    services.catalog.set_status(entry.id, state.status)
    answer = {"model_id": body.model_id, "status": state.status}
    return json_response(answer if state.error is None else {**answer, "error": state.error})
