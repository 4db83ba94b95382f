"""The one contract both engines meet: mistral.rs over HTTP (``http``) and in-process (``embedded``).

Narrow on purpose, like httpx's one-method transport: the proxy lists and manages models, opens a stream or posts
a whole request, and checks health. Telemetry and addresses are given to the constructors, not asked for here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

from app.upstream.wire import ModelCard, ModelState
from otel.semconv import GenAI

__all__ = ["OPERATIONS", "ModelAction", "PayloadStream", "Route", "Upstream"]

Route = Literal["chat", "completion", "embeddings"]
ModelAction = Literal["status", "unload", "reload"]
# The GenAI operation (``gen_ai.operation.name``) of each route.
OPERATIONS: dict[Route, str] = {"chat": GenAI.CHAT, "completion": GenAI.TEXT_COMPLETION, "embeddings": GenAI.EMBEDDINGS}


class PayloadStream(Protocol):
    """An open upstream stream, iterated in bursts: the JSON payloads of the chunks that arrived together.

    Each burst is a non-empty list. Relaying a burst as one write is what keeps a fast upstream from making
    the proxy the bottleneck: mistral.rs's events often arrive several to a read. ``aclose`` releases it.
    """

    def __aiter__(self) -> AsyncIterator[list[bytes]]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """What the proxy needs from mistral.rs, whether reached over HTTP or run in-process."""

    # What turns this upstream's logprobs into natural logarithms (mistral.rs servers before 0.9.1 report base 10).
    logprob_scale: float

    async def list_models(self) -> list[ModelCard]: ...

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState: ...

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> PayloadStream:
        """Send a generation and return once it is accepted; ``deadline`` (monotonic) bounds the whole stream."""
        ...

    async def post(self, route: Route, body: dict[str, Any]) -> bytes: ...

    async def health(self) -> bool: ...

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[bool]]]:
        """One health check per server, by the name its ``mistral_upstream_up`` series carries."""
        ...

    def locations(self, model_id: str) -> list[str]:
        """Where a model is loaded, by server name, when there are several servers (else empty)."""
        ...

    async def aclose(self) -> None: ...
