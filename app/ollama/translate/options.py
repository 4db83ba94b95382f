"""Ollama request knobs → mistral.rs request fields: options, ``format``, ``think`` and ``keep_alive``."""

from __future__ import annotations

import math
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

_UNIT_NANOSECONDS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                     "h": 3600 * 10**9}  # fmt: skip
_MAX_NANOSECONDS = 2**63 - 1  # Go's time.Duration: beyond it, ParseDuration fails
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


def model_options(own: Mapping[str, float | list[str]] | None) -> Mapping[str, float | list[str]]:
    """What a model samples with when a request says nothing: Ollama's defaults, overridden by the model's own."""
    return {**OLLAMA_DEFAULTS, **own} if own else OLLAMA_DEFAULTS


def options_to_openai(options: Options | None, defaults: Mapping[str, float | list[str]]) -> dict[str, Any]:
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
    if options.stop:  # the request's stop words replace the model's, as in Ollama
        fields["stop"] = [options.stop] if isinstance(options.stop, str) else options.stop
    elif isinstance(stop := defaults.get("stop"), list):
        fields["stop"] = stop
    return {key: value for key, value in fields.items() if value is not None}


def _given(value: float | None, defaults: Mapping[str, float | list[str]], name: str) -> float | None:
    default = defaults.get(name)
    return (default if isinstance(default, int | float) else None) if value is None else value


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
    allowed = 'true, false, "low", "medium", "high" or "max"'
    raise InvalidRequest(f"invalid think value: {_quoted(think)} (must be {allowed})")


def keep_alive_seconds(value: float | str | None) -> float | None:
    """Ollama's ``keep_alive``: seconds as a number, or a Go duration string (``"5m"``, ``"1h30m"``, ``"0"``)."""
    if value is None or isinstance(value, float | int):
        return value
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise InvalidRequest(f"time: invalid duration {_quoted(value)}")
    nanoseconds = _go_duration(text)
    if nanoseconds is None:
        raise InvalidRequest(f"time: invalid duration {_quoted(value)}")
    return nanoseconds / 1e9


def _quoted(value: str, limit: int = 64) -> str:
    """Go's quoting of the value in its error, cut short: an error need not send a megabyte back."""
    if len(value) <= limit:
        return f'"{value}"'
    return f'"{value[:limit]}"… ({len(value)} characters)'


def _go_duration(text: str) -> int | None:
    """Go's ``time.ParseDuration`` in nanoseconds (None: invalid), in one pass over ``text``: a sign, then numbers
    (digits, a fraction, or both) each followed by a unit."""
    sign, i, end = 1, 0, len(text)
    if text[:1] in ("-", "+"):
        sign, i = (-1 if text[0] == "-" else 1), 1
    if text[i:] == "0":
        return 0
    if i == end:
        return None
    total = 0
    while i < end:
        whole_start = i
        i = _digits_end(text, i)
        whole = text[whole_start:i].lstrip("0")
        fraction = ""
        if i < end and text[i] == ".":
            fraction_start = i + 1
            i = _digits_end(text, fraction_start)
            fraction = text[fraction_start:i][:18]  # Go drops the digits past its precision too
        if i == whole_start or text[whole_start:i] == "." or len(whole) > 19:  # no digits, or an overflow
            return None
        unit_start = i
        while i < end and text[i] != "." and not "0" <= text[i] <= "9":
            i += 1
        scale = _UNIT_NANOSECONDS.get(text[unit_start:i])
        if scale is None:
            return None
        total += int(whole or "0") * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
        if total > _MAX_NANOSECONDS:
            return None
    return sign * total


def _digits_end(text: str, i: int) -> int:
    while i < len(text) and "0" <= text[i] <= "9":
        i += 1
    return i
