"""Ollama chat messages, images and tool calls → OpenAI/mistral.rs messages."""

from __future__ import annotations

import binascii
from typing import Any

import msgspec

from app.errors import InvalidRequest
from app.ollama import Message, ToolCall
from app.upstream.wire import ROLES

__all__ = ["image_part", "messages_to_openai", "tools_to_openai", "user_content"]

_IMAGE_MAGIC = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
    ("Qk", "image/bmp"),
)
_encode_json = msgspec.json.Encoder().encode


def image_part(image: str) -> dict[str, Any]:
    """Ollama sends bare base64; mistral.rs wants a data URL, so sniff the type from the first bytes."""
    if image.startswith("data:"):
        return {"type": "image_url", "image_url": {"url": image}}
    try:
        binascii.a2b_base64(image, strict_mode=True)
    except ValueError:  # binascii.Error, and ValueError for characters outside ASCII
        raise InvalidRequest(f"illegal base64 data at input byte {_bad_base64_offset(image)}") from None
    mime = next((kind for magic, kind in _IMAGE_MAGIC if image.startswith(magic)), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{image}"}}


_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _bad_base64_offset(image: str) -> int:
    """Where Go's decoder (so Ollama) reports the fault: the first byte outside the alphabet, else the last
    complete quantum's end (bad padding or length)."""
    data = image.encode()
    return next((i for i, byte in enumerate(data) if byte not in _BASE64), len(data) // 4 * 4)


def user_content(text: str, images: list[str] | None) -> str | list[dict[str, Any]]:
    if not images:
        return text
    return [{"type": "text", "text": text}, *(image_part(image) for image in images)]


def _arguments(call: ToolCall) -> str:
    arguments = call.function.arguments
    if isinstance(arguments, str):
        return arguments
    return _encode_json(arguments or {}).decode()


def _tool_calls(calls: list[ToolCall], position: int, ids: dict[str, str]) -> list[dict[str, Any]]:
    converted = []
    for index, call in enumerate(calls):
        call_id = call.id or f"call_{position}_{index}"
        ids[call.function.name] = call_id
        function = {"name": call.function.name, "arguments": _arguments(call)}
        converted.append({"id": call_id, "type": "function", "function": function})
    return converted


def _message(message: Message, position: int, ids: dict[str, str]) -> dict[str, Any]:
    role = message.role.lower()
    if role not in ROLES:
        raise InvalidRequest(f'invalid message role "{message.role}" (must be system, user, assistant or tool)')
    # mistral.rs's engine panics on a message without content, so always send a string.
    converted: dict[str, Any] = {"role": role, "content": user_content(message.content or "", message.images)}
    if role == "assistant" and message.tool_calls:
        converted["tool_calls"] = _tool_calls(message.tool_calls, position, ids)
    elif role == "tool":
        # Ollama clients name the tool; OpenAI needs the id of the call it answers.
        name = message.tool_name or ""
        converted["tool_call_id"] = message.tool_call_id or ids.get(name, f"call_{position}")
        if name:
            converted["name"] = name
    return converted


def messages_to_openai(messages: list[Message]) -> list[dict[str, Any]]:
    ids: dict[str, str] = {}
    return [_message(message, position, ids) for position, message in enumerate(messages)]


def tools_to_openai(tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not tools:
        return {}
    for tool in tools:
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("invalid tool: each tool needs a function with a name")
    return {"tools": [{"type": "function", **tool} for tool in tools]}
