"""Everything about reaching mistral.rs: the contract (``base``), its wire shapes (``wire``), the server client
(``http``), the in-process engine (``embedded``), several servers as one (``pool``). Which one runs is the composition
root's choice (``app.main.make_upstream``): nothing here reads the settings."""

from __future__ import annotations

from app.upstream.base import OPERATIONS, ModelAction, PayloadStream, Route, Upstream
from app.upstream.wire import ChatCompletionChunk, ModelCard, ModelState, Usage

__all__ = [
    "OPERATIONS",
    "ChatCompletionChunk",
    "ModelAction",
    "ModelCard",
    "ModelState",
    "PayloadStream",
    "Route",
    "Upstream",
    "Usage",
]
