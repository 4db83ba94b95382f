"""The embedding routes' wire shapes: ``/api/embed`` and the legacy ``/api/embeddings``."""

from __future__ import annotations

from msgspec import UNSET, Struct, UnsetType

from app.ollama.common import Int64, KeepAlive, Options

__all__ = ["EmbedRequest", "EmbedResponse", "EmbeddingsRequest", "EmbeddingsResponse"]


class EmbedRequest(Struct):
    model: str = ""
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: Int64 | None = None  # as Go's int: a bigger number is refused, not a vector of it
    keep_alive: KeepAlive = None
    options: Options | None = None


class EmbeddingsRequest(Struct):
    model: str = ""
    prompt: str = ""
    keep_alive: KeepAlive = None
    options: Options | None = None


class EmbedResponse(Struct, kw_only=True):
    model: str
    embeddings: list[list[float]]
    total_duration: int | UnsetType = UNSET
    load_duration: int | UnsetType = UNSET
    prompt_eval_count: int | UnsetType = UNSET


class EmbeddingsResponse(Struct):
    embedding: list[float]
