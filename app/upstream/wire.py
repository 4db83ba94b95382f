"""mistral.rs (OpenAI-compatible) wire shapes, declaring only the fields the proxy reads.

Decoding uses msgspec: one validating pass per streamed chunk, unknown fields ignored.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "ROLES",
    "ChatCompletionChunk",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "Delta",
    "EmbeddingResponse",
    "FunctionCall",
    "Logprob",
    "Logprobs",
    "ModelCard",
    "ModelList",
    "ModelMetadata",
    "ModelState",
    "TensorInfo",
    "ToolCallDelta",
    "TopLogprob",
    "Usage",
]


# The chat roles mistral.rs (and OpenAI) accept; Ollama's are the same four.
ROLES = frozenset({"system", "user", "assistant", "tool"})


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


class TopLogprob(msgspec.Struct):
    token: int  # the token id; its text is in ``bytes``
    logprob: float
    bytes: str | None = None


class Logprob(msgspec.Struct):
    """A sampled token's log probability: natural since mistral.rs 0.9.1, base 10 before (``sampler.rs``)."""

    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = msgspec.field(default_factory=list)


class Logprobs(msgspec.Struct):
    content: list[Logprob] | None = None


class ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: Delta | None = None  # chat completions
    text: str | None = None  # text completions
    finish_reason: str | None = None
    # One token's per streamed chunk; the whole answer's list when a Completion is read as a chunk.
    logprobs: Logprob | list[Logprob] | None = None


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
    logprobs: Logprobs | None = None


class Completion(msgspec.Struct):
    """A non-streamed chat or text completion."""

    id: str = ""
    model: str = ""
    choices: list[CompletionChoice] = msgspec.field(default_factory=list)
    usage: Usage | None = None

    def as_chunk(self) -> ChatCompletionChunk:
        """The whole answer as one stream chunk, so that one translator serves both."""
        choices = [
            ChunkChoice(c.index, c.message, c.text, c.finish_reason, c.logprobs.content if c.logprobs else None)
            for c in self.choices
        ]
        return ChatCompletionChunk(self.id, self.model, choices, self.usage)


class TensorInfo(msgspec.Struct):
    name: str
    type: str  # ggml's name for it: F32, Q4_1, Q8_0…
    shape: list[int]


class ModelMetadata(msgspec.Struct):
    """What the in-process engine reads from its model file (a mistral.rs server reports none of it)."""

    format: str
    architecture: str
    parameter_count: int
    file_type: str  # the quantization, as Ollama names it
    context_length: int | None
    size: int  # bytes
    info: dict[str, Any]  # the header's scalar keys, but for the name and the chat template
    chat_template: str | None = None  # tokenizer.chat_template: what the engine renders messages with
    arrays: dict[str, list[Any]] = msgspec.field(default_factory=dict)  # its arrays: tokenizer tables, languages
    tensors: list[TensorInfo] = msgspec.field(default_factory=list)


class ModelCard(msgspec.Struct):
    id: str
    created: int = 0
    status: str | None = None
    metadata: ModelMetadata | None = None  # not on mistral.rs's wire: the in-process engine's own
    # Not on mistral.rs's wire either: the sampling options the model's files carry, in Ollama's names, and what
    # the model can do, as its files and the engine say (None: not known, as from a mistral.rs server): whether its
    # chat template renders tools and thinking, and whether the engine shows it images.
    parameters: dict[str, float | list[str]] | None = None  # Ollama's names; ``stop`` is a list
    tools: bool | None = None
    thinking: bool | None = None
    vision: bool | None = None


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
    model: str = ""
