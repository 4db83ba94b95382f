"""Anthropic's Messages API, as Ollama serves it: its wire schema (typed structs, no I/O) and its translation to and
from an Ollama chat."""

from __future__ import annotations

from app.anthropic.messages import MessagesRequest, MessagesResponse
from app.anthropic.translate import MessageEvents, estimate_input_tokens, message_id, to_chat_request, to_message

__all__ = [
    "MessageEvents",
    "MessagesRequest",
    "MessagesResponse",
    "estimate_input_tokens",
    "message_id",
    "to_chat_request",
    "to_message",
]
