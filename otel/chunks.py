"""What telemetry reads of a streamed answer: the chunk's shape (as mistral.rs sends it, OpenAI's) and ``observe``,
which feeds each chunk of a stream to its GenAI invocation as it passes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from otel.genai import Invocation

__all__ = ["Chunk", "Usage", "observe"]

T = TypeVar("T")


class Usage(Protocol):
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...


class _Delta(Protocol):
    @property
    def content(self) -> str | None: ...
    @property
    def reasoning_content(self) -> str | None: ...
    @property
    def tool_calls(self) -> Sequence[Any] | None: ...


class _Choice(Protocol):
    @property
    def delta(self) -> _Delta | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def finish_reason(self) -> str | None: ...


class Chunk(Protocol):
    """An OpenAI-shaped streamed chunk, as mistral.rs sends it."""

    @property
    def id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def choices(self) -> Sequence[_Choice]: ...
    @property
    def usage(self) -> Usage | None: ...


async def observe(
    bursts: AsyncIterator[list[T]], invocation: Invocation, chunk_of: Callable[[T], Chunk | None] | None = None
) -> AsyncIterator[list[T]]:
    """Pass bursts of items through, feeding the invocation; whoever owns the invocation finalises it.

    ``chunk_of`` reads a chunk out of each item (relayed raw payloads are decoded for telemetry only).
    """
    async for items in bursts:
        for item in items:
            chunk = item if chunk_of is None else chunk_of(item)
            if chunk is not None:
                invocation.on_chunk(chunk)  # type: ignore[arg-type]
        yield items
