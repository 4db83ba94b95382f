"""OpenAI's Responses API, as Ollama serves it: its wire schema (typed structs, no I/O) and its translation to and from
an Ollama chat. (The other OpenAI routes are mistral.rs's own, relayed, their answers in Ollama's shape: shape.py.)"""

from __future__ import annotations

from app.openai.responses import ResponsesRequest
from app.openai.translate import ResponseEvents, response_id, to_chat_request, to_response

__all__ = ["ResponseEvents", "ResponsesRequest", "response_id", "to_chat_request", "to_response"]
