"""Ollama request knobs → mistral.rs request fields: options, ``format``, ``think`` and ``keep_alive``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from app.errors import InvalidRequest
from app.ollama import Options

__all__ = [
    "OLLAMA_DEFAULTS",
    "format_to_openai",
    "keep_alive_seconds",
    "model_options",
    "options_to_openai",
    "think_to_openai",
]

# Ollama's api.DefaultOptions() that mistral.rs can apply, in Ollama's names. Its other defaults are mistral.rs's
# own behaviour when unset (num_predict -1, min_p 0, presence and frequency penalty 0, a random seed); mistral.rs
# has no repeat_last_n (Ollama's 64).
OLLAMA_DEFAULTS: Mapping[str, float] = MappingProxyType(
    {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1}
)
_NONE = Options()

_DURATION = re.compile(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)")
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


def model_options(own: Mapping[str, float] | None) -> Mapping[str, float]:
    """What a model samples with when a request says nothing: Ollama's defaults, overridden by the model's own."""
    return {**OLLAMA_DEFAULTS, **own} if own else OLLAMA_DEFAULTS


def options_to_openai(options: Options | None, defaults: Mapping[str, float]) -> dict[str, Any]:
    """The request's options over ``defaults`` (Ollama's names: the model's own, else Ollama's), key by key, as
    Ollama merges them: a client that sends no options samples as it would with Ollama."""
    options = options or _NONE
    fields: dict[str, Any] = {
        "temperature": _given(options.temperature, defaults, "temperature"),
        "top_p": _given(options.top_p, defaults, "top_p"),
        "top_k": _given(options.top_k, defaults, "top_k"),
        "min_p": _given(options.min_p, defaults, "min_p"),
        "repetition_penalty": _given(options.repeat_penalty, defaults, "repeat_penalty"),
        "presence_penalty": _given(options.presence_penalty, defaults, "presence_penalty"),
        "frequency_penalty": _given(options.frequency_penalty, defaults, "frequency_penalty"),
        "seed": options.seed,
    }
    # num_predict -1 (unlimited) and -2 (fill the context) mean "no limit" to mistral.rs.
    if options.num_predict is not None and options.num_predict > 0:
        fields["max_tokens"] = options.num_predict
    if options.stop:
        fields["stop"] = [options.stop] if isinstance(options.stop, str) else options.stop
    return {key: value for key, value in fields.items() if value is not None}


def _given(value: float | None, defaults: Mapping[str, float], name: str) -> float | None:
    return defaults.get(name) if value is None else value


def format_to_openai(fmt: str | dict[str, Any] | None) -> dict[str, Any]:
    if fmt is None or fmt == "":
        return {}
    if fmt == "json":
        return {"response_format": {"type": "json_object"}}
    if isinstance(fmt, dict):
        schema = {"name": "response", "schema": fmt}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    raise InvalidRequest(f'invalid format: "{fmt}" (expected "json" or a JSON schema)')


def think_to_openai(think: bool | str | None) -> dict[str, Any]:
    if think is None:
        return {}
    if isinstance(think, bool):
        return {"enable_thinking": think}
    if think in _EFFORTS:
        return {"enable_thinking": True, "reasoning_effort": _EFFORTS[think]}
    raise InvalidRequest(f'invalid think value: "{think}" (must be true, false, "low", "medium", "high" or "max")')


def keep_alive_seconds(value: float | str | None) -> float | None:
    """Ollama's ``keep_alive``: seconds as a number, or a Go duration string (``"5m"``, ``"1h30m"``, ``"0"``)."""
    if value is None or isinstance(value, float | int):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.fullmatch(text)
    if not match:
        raise InvalidRequest(f'time: invalid duration "{value}"')
    total = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(match.group(2)))
    return -total if match.group(1) == "-" else total
