"""``/v1/messages``: Anthropic's Messages API, run as the Ollama chat it translates to (Ollama's own design)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.anthropic import MessagesRequest, estimate_input_tokens, to_chat_request
from app.anthropic.messages import ContentBlock
from app.bounds import Bounds
from app.errors import InvalidRequest, ModelRequired
from app.generation import services_of
from app.http.body import parse_body
from app.ollama.translate.options import model_options
from app.ollama.translate.requests import chat_request_to_openai, check_tools
from app.ollama.translate.show import capabilities
from app.routes.generation import check_bounds
from otel.clock import Clock

__all__ = ["messages"]


async def messages(request: Request) -> Response:
    clock = Clock()
    body = await parse_body(request, MessagesRequest)
    if not body.model:
        raise ModelRequired()
    if body.max_tokens <= 0:
        raise InvalidRequest("max_tokens is required and must be positive")
    if not body.messages:
        raise InvalidRequest("messages is required")
    services = services_of(request)
    bounds = services.bounds
    bounds.count("tools", len(body.tools or ()), bounds.tools)
    bounds.count("messages", len(body.messages), bounds.messages)
    for blocks in (body.system, *(message.content for message in body.messages)):
        _count_blocks(bounds, blocks)
    entry = await services.catalog.resolve(body.model)
    chat = to_chat_request(body, can_think="thinking" in capabilities(entry.id, entry.card))
    check_bounds(bounds, chat.messages or [], chat.options)
    check_tools(chat.tools, body.model, entry.card)
    upstream_body = chat_request_to_openai(chat, entry.id, model_options(entry.card.parameters))
    return await services.generations.anthropic(
        request, entry=entry, body=upstream_body, requested=body.model, stream=body.stream is True, clock=clock,
        estimated_input=estimate_input_tokens(body),
    )  # fmt: skip


def _count_blocks(bounds: Bounds, blocks: str | list[ContentBlock] | dict[str, Any] | None) -> None:
    """A message's blocks, and those of the tool results among them, however deep the decoder let them nest."""
    pending = [blocks]
    while pending:
        found = pending.pop()
        if isinstance(found, list):
            bounds.count("content blocks", len(found), bounds.content_parts)
            pending.extend(block.content for block in found)
