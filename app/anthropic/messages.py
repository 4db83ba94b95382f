"""Anthropic's Messages API as Ollama serves it at ``/v1/messages`` (``anthropic/anthropic.go``): typed structs, no
I/O. Unknown fields are ignored, as Go's decoder ignores them."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, Struct, UnsetType

__all__ = [
    "ContentBlock",
    "ImageSource",
    "MessageParam",
    "MessagesRequest",
    "MessagesResponse",
    "OutputConfig",
    "ThinkingConfig",
    "Tool",
    "ToolChoice",
    "Usage",
]


class ImageSource(Struct):
    type: str = ""
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ContentBlock(Struct, omit_defaults=True):
    """Every kind of block in one shape, as Ollama decodes them; ``type`` says which fields mean something."""

    type: str
    text: str | UnsetType = UNSET
    source: ImageSource | None = None
    id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    input: dict[str, Any] | UnsetType = UNSET
    tool_use_id: str | None = None
    # A tool result's content: text, or text and image blocks (web search results are objects: no block here).
    content: str | list[ContentBlock] | dict[str, Any] | None = None
    is_error: bool | None = None
    thinking: str | UnsetType = UNSET
    signature: str | None = None


class MessageParam(Struct):
    role: str
    content: str | list[ContentBlock]


class Tool(Struct):
    name: str = ""
    type: str | None = None  # "custom", or a server tool such as "web_search_20250305"
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(Struct):
    type: str = "auto"  # auto, any, tool, none
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(Struct):
    type: str = ""  # enabled, disabled
    budget_tokens: int | None = None


class OutputConfig(Struct):
    effort: str | None = None


class MessagesRequest(Struct):
    model: str = ""
    max_tokens: int = 0
    messages: list[MessageParam] | None = None
    system: str | list[ContentBlock] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    metadata: dict[str, Any] | None = None
    output_config: OutputConfig | None = None


class Usage(Struct):
    input_tokens: int
    output_tokens: int


class MessagesResponse(Struct):
    id: str
    model: str
    content: list[ContentBlock]
    usage: Usage
    stop_reason: str | UnsetType = UNSET  # absent until the answer ends, as Ollama writes it
    stop_sequence: str | UnsetType = UNSET
    type: str = "message"
    role: str = "assistant"
