"""OpenAI's Responses API as Ollama serves it at ``/v1/responses`` (``openai/responses.go``): typed structs, no I/O.
Unknown fields are ignored, as Go's decoder ignores them."""

from __future__ import annotations

from typing import Any

from msgspec import Struct

__all__ = [
    "ContentPart",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "InputMessage",
    "Reasoning",
    "ReasoningItem",
    "ResponsesRequest",
    "ResponsesTool",
    "TextFormat",
]


class ContentPart(Struct):
    type: str  # input_text, output_text, input_image, input_file
    text: str = ""
    image_url: str | None = None
    detail: str | None = None
    file_id: str | None = None
    file_data: str | None = None


class InputMessage(Struct):
    role: str
    content: str | list[ContentPart] | None = None
    type: str = "message"


class FunctionCallItem(Struct):
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    type: str = "function_call"
    id: str | None = None


class FunctionCallOutputItem(Struct):
    call_id: str = ""
    output: str | list[ContentPart] = ""
    type: str = "function_call_output"


class ReasoningSummary(Struct):
    type: str = "summary_text"
    text: str = ""


class ReasoningItem(Struct):
    type: str = "reasoning"
    id: str | None = None
    summary: list[ReasoningSummary] | None = None
    encrypted_content: str | None = None


class ResponsesTool(Struct):
    type: str = "function"  # function, namespace, web_search
    name: str = ""
    description: str | None = None
    strict: bool | None = None
    parameters: dict[str, Any] | None = None
    tools: list[ResponsesTool] | None = None  # a namespace's functions


class Reasoning(Struct):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class TextFormat(Struct):
    type: str = "text"  # text, json_schema
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class Text(Struct):
    format: TextFormat | None = None


class ResponsesRequest(Struct):
    model: str = ""
    # A string, or items: messages (``type`` may be left out), function calls and their outputs, reasoning.
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: Reasoning | None = None
    text: Text | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    truncation: str | None = None
    stream: bool | None = None
    store: bool | None = None
    background: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
