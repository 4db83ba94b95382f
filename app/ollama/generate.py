"""``POST /api/generate`` wire shapes."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, Struct, UnsetType

from app.ollama.common import Base64, Int64, KeepAlive, Logprob, Options, Think

__all__ = ["GenerateRequest", "GenerateResponse"]


class GenerateRequest(Struct):
    model: str = ""
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    stream: bool | None = None
    raw: bool | None = None
    format: str | dict[str, Any] | None = None
    keep_alive: KeepAlive = None
    images: list[Base64] | None = None
    options: Options | None = None
    think: Think = None
    logprobs: bool | None = None
    top_logprobs: Int64 | None = None
    truncate: bool | None = None  # as chat's
    shift: bool | None = None


class GenerateResponse(Struct):
    model: str
    created_at: str
    response: str
    done: bool
    thinking: str | UnsetType = UNSET
    done_reason: str | UnsetType = UNSET
    # Only the final ``done: true`` object carries these; durations are integer nanoseconds.
    total_duration: int | UnsetType = UNSET
    load_duration: int | UnsetType = UNSET
    prompt_eval_count: int | UnsetType = UNSET
    prompt_eval_duration: int | UnsetType = UNSET
    eval_count: int | UnsetType = UNSET
    eval_duration: int | UnsetType = UNSET
    context: list[int] | UnsetType = UNSET  # the final object of a templated (not raw) generate
    logprobs: list[Logprob] | UnsetType = UNSET
