"""Model listing, inspection, embeddings and the model-management routes' wire shapes."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, Struct, UnsetType

from app.ollama.common import KeepAlive, Options

__all__ = [
    "CopyRequest",
    "Details",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "ListResponse",
    "ModelRequest",
    "ProcessModel",
    "ProcessResponse",
    "ShowResponse",
    "TagModel",
]


class ModelRequest(Struct):
    """Body of show, pull, push, delete: ``model`` (``name`` is the legacy spelling)."""

    model: str = ""  # either may be empty when the other is set
    name: str = ""
    stream: bool | None = None
    verbose: bool | None = None


class CopyRequest(Struct):
    source: str = ""
    destination: str = ""


class EmbedRequest(Struct):
    model: str = ""
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int | None = None
    keep_alive: KeepAlive = None
    options: Options | None = None


class EmbeddingsRequest(Struct):
    model: str = ""
    prompt: str = ""
    keep_alive: KeepAlive = None
    options: Options | None = None


class Details(Struct):
    parent_model: str
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class TagModel(Struct):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: Details


class ProcessModel(Struct):
    name: str
    model: str
    size: int
    digest: str
    details: Details
    expires_at: str
    size_vram: int


class ListResponse(Struct):
    models: list[TagModel]


class ProcessResponse(Struct):
    models: list[ProcessModel]


class ShowResponse(Struct):
    modelfile: str
    parameters: str
    template: str
    details: Details
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class EmbedResponse(Struct, kw_only=True):
    model: str
    embeddings: list[list[float]]
    total_duration: int | UnsetType = UNSET
    load_duration: int | UnsetType = UNSET
    prompt_eval_count: int | UnsetType = UNSET


class EmbeddingsResponse(Struct):
    embedding: list[float]
