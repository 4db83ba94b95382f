"""Everything that knows mistral.rs: its wire shapes, the HTTP client and the SSE decoder."""

from __future__ import annotations

from app.upstream.http import HTTPUpstream
from app.upstream.schema import (
    ChatCompletionChunk,
    ModelCard,
    ModelState,
    PayloadStream,
    Route,
    Upstream,
    Usage,
)

__all__ = [
    "ChatCompletionChunk",
    "HTTPUpstream",
    "ModelCard",
    "ModelState",
    "PayloadStream",
    "Route",
    "Upstream",
    "Usage",
]
