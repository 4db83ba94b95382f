"""Ollama's HTTP API: its wire schema (typed structs, no I/O) here, and ``translate`` to and from mistral.rs."""

from __future__ import annotations

from app.ollama.chat import AssistantMessage, ChatRequest, ChatResponse
from app.ollama.common import (
    FunctionCall,
    FunctionCallOut,
    Logprob,
    Message,
    Options,
    TokenLogprob,
    ToolCall,
    ToolCallOut,
)
from app.ollama.embed import EmbeddingsRequest, EmbeddingsResponse, EmbedRequest, EmbedResponse
from app.ollama.generate import GenerateRequest, GenerateResponse
from app.ollama.manage import (
    CopyRequest,
    Details,
    ListResponse,
    ModelRequest,
    ProcessModel,
    ProcessResponse,
    ShowResponse,
    TagModel,
)

__all__ = [
    "AssistantMessage",
    "ChatRequest",
    "ChatResponse",
    "CopyRequest",
    "Details",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "FunctionCall",
    "FunctionCallOut",
    "GenerateRequest",
    "GenerateResponse",
    "ListResponse",
    "Logprob",
    "Message",
    "ModelRequest",
    "Options",
    "ProcessModel",
    "ProcessResponse",
    "ShowResponse",
    "TagModel",
    "TokenLogprob",
    "ToolCall",
    "ToolCallOut",
]
