"""Ollama model names (``[host/][namespace/]model[:tag]``) and how they map to mistral.rs model ids."""

from __future__ import annotations

import hashlib
import posixpath

__all__ = ["digest", "display_name", "full_name", "normalize", "parse_aliases"]

_LATEST = ":latest"


def _has_tag(name: str) -> bool:
    colon = name.rfind(":")
    return colon > 0 and "/" not in name[colon:]


def normalize(name: str) -> str:
    """The lookup key for a name: Ollama matches case-insensitively and an untagged name means ``:latest``."""
    name = name.strip().lower()
    return name if _has_tag(name) else name + _LATEST


def display_name(model_id: str) -> str:
    """How a mistral.rs model id is listed to Ollama clients: always with a tag, paths reduced to a name."""
    if model_id.startswith(("/", "./", "../", "~")):
        model_id = posixpath.basename(model_id.rstrip("/")) or model_id
        if model_id.lower().endswith(".gguf"):
            model_id = model_id[: -len(".gguf")]
    return model_id if _has_tag(model_id) else model_id + _LATEST


def full_name(name: str) -> str:
    """Ollama's ``model.ParseName(name).String()``, how its capability errors name a model: every part filled in
    (``smollm2:135m`` is ``registry.ollama.ai/library/smollm2:135m``)."""
    tag = ""
    if name.rfind(":") > name.rfind("/"):
        name, _, tag = name.rpartition(":")
    rest, _, model = name.rpartition("/")
    host, _, namespace = rest.rpartition("/")
    host = host.split("://", 1)[-1]
    return f"{host or 'registry.ollama.ai'}/{namespace or 'library'}/{model}:{tag or 'latest'}"


def digest(model_id: str) -> str:
    """A stable 64-hex digest: mistral.rs has no blobs, so identify the model by its id."""
    return hashlib.sha256(model_id.encode()).hexdigest()


def parse_aliases(value: str) -> dict[str, str]:
    """``"mistral:latest=mistral-7b,llama=meta/llama"`` → ``{"mistral:latest": "mistral-7b", ...}``."""
    aliases: dict[str, str] = {}
    for entry in value.split(","):
        if not entry.strip():
            continue
        alias, sep, model_id = entry.partition("=")
        if not sep or not alias.strip() or not model_id.strip():
            raise ValueError(f"alias {entry.strip()!r} is not of the form name=model-id")
        aliases[display_name(alias.strip())] = model_id.strip()
    return aliases
