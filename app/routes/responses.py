"""``/v1/responses``: OpenAI's Responses API, run as the Ollama chat it translates to (Ollama's own design)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.errors import ModelRequired
from app.generation import services_of
from app.http.body import parse_body
from app.ollama.translate.options import model_options
from app.ollama.translate.requests import chat_request_to_openai, check_thinking, check_tools
from app.openai import ResponsesRequest, to_chat_request
from app.openai.responses import ResponsesTool
from app.routes.generation import check_bounds
from otel.clock import Clock

__all__ = ["responses"]


async def responses(request: Request) -> Response:
    clock = Clock()
    body = await parse_body(request, ResponsesRequest)
    if not body.model:
        raise ModelRequired()
    services = services_of(request)
    bounds = services.bounds
    bounds.count("tools", _tool_count(body.tools), bounds.tools)
    items = body.input if isinstance(body.input, list) else []
    bounds.count("input items", len(items), bounds.messages)
    for item in items:
        parts = item.get("content", item.get("output"))
        bounds.count("content parts in an input item", len(parts) if isinstance(parts, list) else 0,
                     bounds.content_parts)  # fmt: skip
    chat = to_chat_request(body)
    check_bounds(bounds, chat.messages or [], chat.options)
    entry = await services.catalog.resolve(body.model)
    check_thinking(chat.think, body.model, entry.id, entry.card)
    check_tools(chat.tools, body.model, entry.card)
    upstream_body = chat_request_to_openai(chat, entry.id, model_options(entry.card.parameters))
    return await services.generations.responses(request, entry=entry, body=upstream_body, asked=body, clock=clock)


def _tool_count(tools: list[ResponsesTool] | None) -> int:
    """A namespace's functions count each, as the model is given each."""
    return sum(_tool_count(tool.tools) if tool.type == "namespace" else 1 for tool in tools or ())
