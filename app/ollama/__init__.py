"""Ollama's HTTP API wire schema: typed structs only, no I/O."""

from __future__ import annotations

from app.ollama.chat import AssistantMessage, ChatRequest, ChatResponse
from app.ollama.common import (
    FunctionCall,
    FunctionCallOut,
    Message,
    Options,
    ToolCall,
    ToolCallOut,
)
from app.ollama.generate import GenerateRequest, GenerateResponse
from app.ollama.models import (
    CopyRequest,
    Details,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbedRequest,
    EmbedResponse,
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
    "Message",
    "ModelRequest",
    "Options",
    "ProcessModel",
    "ProcessResponse",
    "ShowResponse",
    "TagModel",
    "ToolCall",
    "ToolCallOut",
]
