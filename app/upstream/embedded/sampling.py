"""What a model's own files say about how to prompt it: the sampling options it carries, in Ollama's names (a GGUF
header's ``general.sampling.*`` keys, which llama.cpp's converter writes from the model's generation config, or a
model directory's ``generation_config.json``; only the options mistral.rs applies), and whether its chat template
renders tools and thinking."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.upstream.embedded.spec import ModelSpec
from app.upstream.wire import ModelMetadata

__all__ = ["own_parameters", "renders_thinking", "renders_tools"]

# A Jinja chat template that renders tools reads a variable of that name (HF's apply_chat_template passes it).
_TOOLS = re.compile(r"\btools\b")
# A template that thinks switches it on (Qwen3, SmolLM3), replays earlier reasoning, or opens a <think> block.
_THINKING = re.compile(r"\benable_thinking\b|\breasoning_content\b|<think>")
# Ollama recognises a ChatML template and gives the model its stop words (its template/chatml.json). They matter
# beyond the show: a turn marker is a special token, which mistral.rs renders as nothing and does not stop at, so a
# model that opens a new turn would go on generating silently until its token limit.
_CHATML = ("<|im_start|>", "<|im_end|>")

_GGUF = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_k": "top_k",
    "general.sampling.top_p": "top_p",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty",
}
_GENERATION_CONFIG = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "repetition_penalty": "repeat_penalty",
}


def own_parameters(spec: ModelSpec, metadata: ModelMetadata | None) -> dict[str, float | list[str]] | None:
    """None when the model carries none (it then samples with Ollama's defaults)."""
    found: dict[str, float | list[str]] = {**(_sampling(spec, metadata) or {})}
    template = _template(spec, metadata)
    if isinstance(template, str) and all(marker in template for marker in _CHATML):
        found["stop"] = list(_CHATML)
    return found or None


def renders_tools(spec: ModelSpec, metadata: ModelMetadata | None) -> bool | None:
    """None when there is no template to read (mistral.rs then falls back to its own)."""
    template = _template(spec, metadata)
    return bool(_TOOLS.search(template)) if isinstance(template, str) else None


def renders_thinking(spec: ModelSpec, metadata: ModelMetadata | None) -> bool | None:
    template = _template(spec, metadata)
    return bool(_THINKING.search(template)) if isinstance(template, str) else None


def _sampling(spec: ModelSpec, metadata: ModelMetadata | None) -> dict[str, float] | None:
    if metadata is not None:
        return _pick(metadata.info, _GGUF)
    config = Path(spec.location) / "generation_config.json"
    if spec.kind != "plain" or not config.is_file():
        return None
    try:
        values = json.loads(config.read_text())
    except (OSError, ValueError):  # a nicety, as the GGUF facts are: a broken file costs only the defaults
        return None
    return _pick(values, _GENERATION_CONFIG) if isinstance(values, dict) else None


def _template(spec: ModelSpec, metadata: ModelMetadata | None) -> Any:
    return metadata.chat_template if metadata is not None else _json_field(spec, "tokenizer_config.json")


def _json_field(spec: ModelSpec, name: str) -> Any:
    path = Path(spec.location) / name
    if spec.kind != "plain" or not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return values.get("chat_template") if isinstance(values, dict) else None


def _pick(values: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, float] | None:
    found = {
        ollama: float(f"{value:.6g}") if isinstance(value, float) else value  # GGUF floats are float32
        for key, ollama in names.items()
        if isinstance(value := values.get(key), int | float) and not isinstance(value, bool)
    }
    return found or None
