"""Model listing, inspection and the model-management routes' wire shapes."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, Struct, UnsetType

__all__ = [
    "CopyRequest",
    "Details",
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
    capabilities: list[str]  # since Ollama 0.33


class ProcessModel(Struct, omit_defaults=True):
    name: str
    model: str
    size: int
    digest: str
    details: Details
    expires_at: str
    size_vram: int
    # The model's context, where its files say (the in-process engine's); a mistral.rs server does not say.
    context_length: int | UnsetType = UNSET
    # Not Ollama's: the mistral.rs servers (by name) that have it loaded, when the proxy has several.
    upstreams: list[str] | None = None


class ListResponse(Struct):
    models: list[TagModel]


class ProcessResponse(Struct):
    models: list[ProcessModel]


class Tensor(Struct):
    name: str
    type: str
    shape: list[int]


class ShowResponse(Struct, omit_defaults=True):
    modelfile: str
    parameters: str
    template: str
    details: Details
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str
    tensors: list[Tensor] | UnsetType = UNSET  # the model file's, where the proxy reads it (the in-process engine)
