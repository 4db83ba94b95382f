"""Ollama wire shapes shared by chat and generate (``api/types.go``)."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "Base64",
    "FunctionCall",
    "FunctionCallOut",
    "KeepAlive",
    "Logprob",
    "Message",
    "Options",
    "Think",
    "TokenLogprob",
    "ToolCall",
    "ToolCallOut",
]

KeepAlive = float | str | None
Think = bool | str | None
# Go's int is 64-bit: larger numbers are a client error, not something to pass on.
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
# Checked by the handlers, which answer with Ollama's own messages; extra_json_schema only describes the check,
# so that /api/openapi.json is as strict as the validation without msgspec's wording reaching clients.
Role = Annotated[str, Meta(extra_json_schema={"enum": ["system", "user", "assistant", "tool"]})]
Base64 = Annotated[str, Meta(extra_json_schema={"pattern": "^[A-Za-z0-9+/]*={0,2}$"})]


class Options(Struct):
    """The runtime options that map onto mistral.rs; unknown and legacy keys are ignored, ``null`` skipped."""

    num_predict: Int64 | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: Int64 | None = None
    min_p: float | None = None
    stop: list[str] | str | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: Int64 | None = None


class FunctionCall(Struct):
    name: str
    arguments: dict[str, Any] | str | None = None
    index: int | None = None


class ToolCall(Struct):
    function: FunctionCall
    id: str | None = None


class Message(Struct):
    role: Role
    content: str | None = None
    thinking: str | None = None
    images: list[Base64] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class FunctionCallOut(Struct):
    index: int
    name: str
    arguments: dict[str, Any]


class TokenLogprob(Struct, omit_defaults=True):
    """A token and its natural-log probability; ``bytes`` is the token's UTF-8, as Ollama derives it."""

    token: str
    logprob: float
    bytes: list[int] | UnsetType = UNSET


class Logprob(TokenLogprob, omit_defaults=True):
    """A generated token, with the most likely alternatives at its position when ``top_logprobs`` asked."""

    top_logprobs: list[TokenLogprob] | UnsetType = UNSET


class ToolCallOut(Struct, omit_defaults=True):
    function: FunctionCallOut
    id: str | UnsetType = UNSET
