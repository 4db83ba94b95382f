"""Everything about reaching mistral.rs: the contract (``base``), its wire shapes (``wire``), the server client
(``http``), the in-process engine (``embedded``) and ``factory.make_upstream``, which picks one from the settings
(imported from there: this package does not import the settings)."""

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
