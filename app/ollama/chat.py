"""``POST /api/chat`` wire shapes."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, Struct, UnsetType

from app.ollama.common import Int64, KeepAlive, Logprob, Message, Options, Think, ToolCallOut

__all__ = ["AssistantMessage", "ChatRequest", "ChatResponse"]


class ChatRequest(Struct):
    model: str = ""
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None
    format: str | dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: KeepAlive = None
    options: Options | None = None
    think: Think = None
    logprobs: bool | None = None
    top_logprobs: Int64 | None = None
    truncate: bool | None = None  # Ollama's default: a prompt longer than the context is cut to fit
    shift: bool | None = None  # Ollama's default: a full context slides on during generation


class AssistantMessage(Struct):
    role: str
    content: str
    thinking: str | UnsetType = UNSET
    tool_calls: list[ToolCallOut] | UnsetType = UNSET


class ChatResponse(Struct):
    model: str
    created_at: str
    message: AssistantMessage
    done: bool
    done_reason: str | UnsetType = UNSET
    logprobs: list[Logprob] | UnsetType = UNSET
    # Only the final ``done: true`` object carries these; durations are integer nanoseconds.
    total_duration: int | UnsetType = UNSET
    load_duration: int | UnsetType = UNSET
    prompt_eval_count: int | UnsetType = UNSET
    prompt_eval_duration: int | UnsetType = UNSET
    eval_count: int | UnsetType = UNSET
    eval_duration: int | UnsetType = UNSET
