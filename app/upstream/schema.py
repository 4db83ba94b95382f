"""mistral.rs (OpenAI-compatible) wire shapes, declaring only the fields the proxy reads.

Decoding uses msgspec: one validating pass per streamed chunk, unknown fields ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

if TYPE_CHECKING:
    from otel.telemetry import Telemetry

__all__ = [
    "ChatCompletionChunk",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "Delta",
    "EmbeddingResponse",
    "FunctionCall",
    "ModelAction",
    "ModelCard",
    "ModelList",
    "ModelState",
    "PayloadStream",
    "Route",
    "ToolCallDelta",
    "Upstream",
    "Usage",
]

Route = Literal["chat", "completion", "embeddings"]
ModelAction = Literal["status", "unload", "reload"]


class FunctionCall(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: FunctionCall | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    # Engine step times, accumulated in whole milliseconds: only their ratio is used.
    total_prompt_time_sec: float = 0.0
    total_completion_time_sec: float = 0.0


class ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: Delta | None = None  # chat completions
    text: str | None = None  # text completions
    finish_reason: str | None = None


class ChatCompletionChunk(msgspec.Struct):
    """A streamed chat or text completion chunk (``choices[].delta`` or ``choices[].text``)."""

    id: str = ""
    model: str = ""
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    usage: Usage | None = None


class CompletionChoice(msgspec.Struct):
    index: int = 0
    message: Delta | None = None  # chat completions
    text: str | None = None  # text completions
    finish_reason: str | None = None


class Completion(msgspec.Struct):
    """A non-streamed chat or text completion."""

    id: str = ""
    model: str = ""
    choices: list[CompletionChoice] = msgspec.field(default_factory=list)
    usage: Usage | None = None

    def as_chunk(self) -> ChatCompletionChunk:
        """The whole answer as one stream chunk, so that one translator serves both."""
        choices = [ChunkChoice(c.index, c.message, c.text, c.finish_reason) for c in self.choices]
        return ChatCompletionChunk(self.id, self.model, choices, self.usage)


class ModelCard(msgspec.Struct):
    id: str
    created: int = 0
    status: str | None = None


class ModelList(msgspec.Struct):
    data: list[ModelCard]


class ModelState(msgspec.Struct):
    model_id: str
    status: str
    error: str | None = None


class _Embedding(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class _EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int = 0


class EmbeddingResponse(msgspec.Struct):
    data: list[_Embedding]
    usage: _EmbeddingUsage | None = None


class PayloadStream(Protocol):
    """An open upstream stream, iterated in bursts: the JSON payloads of the chunks that arrived together.

    Each burst is a non-empty list. Relaying a burst as one write is what keeps a fast upstream from making
    the proxy the bottleneck: mistral.rs's events often arrive several to a read. ``aclose`` releases it.
    """

    def __aiter__(self) -> AsyncIterator[list[bytes]]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """What the proxy needs from mistral.rs, whether reached over HTTP or run in-process."""

    @property
    def address(self) -> tuple[str, int | None]:
        """``server.address`` and ``server.port`` for telemetry (empty in-process)."""
        ...

    def instrument(self, telemetry: Telemetry) -> None: ...

    async def list_models(self) -> list[ModelCard]: ...

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState: ...

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> PayloadStream:
        """Send a generation and return once it is accepted; ``deadline`` (monotonic) bounds the whole stream."""
        ...

    async def post(self, route: Route, body: dict[str, Any]) -> bytes: ...

    async def health(self) -> bool: ...

    async def aclose(self) -> None: ...
