"""mistral.rs reached over HTTP: one shared ``httpx.AsyncClient`` with keep-alive and a swappable transport."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
from opentelemetry.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from app.errors import UpstreamTimeout, UpstreamUnavailable
from app.upstream.base import ModelAction, Route
from app.upstream.http.errors import map_upstream_errors, status_error
from app.upstream.http.sse import SSEDecoder
from app.upstream.http.transport import LIMITS
from app.upstream.timeouts import StreamTimeouts
from app.upstream.watchdog import Expired, Watchdog
from app.upstream.wire import ModelCard, ModelList, ModelState
from otel.telemetry import instrument_httpx

__all__ = ["HTTPUpstream", "SSEStream"]

_PATHS: dict[Route, str] = {
    "chat": "/v1/chat/completions",
    "completion": "/v1/completions",
    "embeddings": "/v1/embeddings",
}
_JSON = {"content-type": "application/json"}
_WAITING = "mistralrs_sequences_waiting"
_RETRIED = frozenset({502, 503, 504})
_BACKOFF = 0.1
_decode_models = msgspec.json.Decoder(ModelList).decode
_decode_state = msgspec.json.Decoder(ModelState).decode
_encode = msgspec.json.Encoder().encode


class SSEStream:
    """An open ``text/event-stream`` response from mistral.rs, iterated as the payloads of each read, timed per read."""

    def __init__(self, response: httpx.Response, timeouts: StreamTimeouts, deadline: float | None) -> None:
        self._response, self._timeouts, self._deadline = response, timeouts, deadline

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        decoder = SSEDecoder()
        raw = self._response.aiter_raw()
        started = False
        watchdog = Watchdog()  # one timer per stream, not a timeout per read
        try:
            with map_upstream_errors():
                while True:
                    wait, silence = self._timeouts.wait(started, self._deadline)
                    try:
                        data = await watchdog.read(anext(raw), wait)
                    except StopAsyncIteration:
                        break
                    except Expired:
                        raise self._timeouts.error(silence) from None
                    started = True
                    if payloads := decoder.feed(data):
                        yield payloads
                    if decoder.done:
                        break
        finally:
            watchdog.close()
        if not decoder.done and (payloads := decoder.close()):
            yield payloads
        if decoder.failure is not None:
            raise decoder.failure

    async def aclose(self) -> None:
        await self._response.aclose()


class HTTPUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout,
        stream_timeouts: StreamTimeouts,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        tracer_provider: TracerProvider | None = None,
        retries: int = 2,
        name: str = "",
        logprob_base: float = math.e,
    ) -> None:
        self.logprob_scale = math.log(logprob_base)
        self.base_url = base_url.rstrip("/")
        self.name = name or self.base_url  # the ``upstream`` label
        self._stream_timeouts, self._retries = stream_timeouts, retries
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            limits=limits or LIMITS,
            transport=transport,
        )
        instrument_httpx(self.client, tracer_provider)
        # absolute URLs, parsed once: httpx parses and merges a path string on every request (about 45 us here)
        self._urls = {route: httpx.URL(self.base_url + path) for route, path in _PATHS.items()}

    async def list_models(self) -> list[ModelCard]:
        return _decode_models(await self._get("/v1/models")).data

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState:
        body = await self._post(f"/v1/models/{action}", {"model_id": model_id})
        return _decode_state(body)

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> SSEStream:
        request = self.client.build_request("POST", self._urls[route], content=_encode(body), headers=_JSON)
        wait, silence = self._stream_timeouts.wait(False, deadline)
        with map_upstream_errors():
            try:
                async with asyncio.timeout(wait):
                    response = await self.client.send(request, stream=True)
            except TimeoutError:
                raise self._stream_timeouts.error(silence) from None
            if response.status_code != 200:
                try:
                    raise status_error(response.status_code, await response.aread(), response.headers)
                finally:
                    await response.aclose()
        return SSEStream(response, self._stream_timeouts, deadline)

    async def post(self, route: Route, body: dict[str, Any]) -> bytes:
        return await self._post(self._urls[route], body)

    async def health(self) -> bool:
        await self._get("/health")
        return True

    def health_checks(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        return {self.name: self.health}

    def locations(self, model_id: str) -> list[str]:
        return []

    async def sequences_waiting(self) -> float | None:
        """The engine's queue (``mistralrs_sequences_waiting``, mistral.rs 0.9+), or None where it has no metrics."""
        response = await self.client.get("/metrics")
        if response.status_code != 200:
            return None
        samples = [
            sample.value
            for family in text_string_to_metric_families(response.text)
            if family.name == _WAITING
            for sample in family.samples
        ]
        return sum(samples) if samples else None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _get(self, path: str) -> bytes:
        """GETs are idempotent, so a refused connection or a 502/503/504 is retried, with backoff."""
        for attempt in range(self._retries + 1):
            try:
                with map_upstream_errors():
                    response = await self.client.get(path)
                if response.status_code not in _RETRIED or attempt == self._retries:
                    return _checked(response)
            except (UpstreamUnavailable, UpstreamTimeout):
                if attempt == self._retries:
                    raise
            await asyncio.sleep(_BACKOFF * 2**attempt)
        raise AssertionError("unreachable")

    async def _post(self, path: str | httpx.URL, body: dict[str, Any]) -> bytes:
        with map_upstream_errors():
            response = await self.client.post(path, content=_encode(body), headers=_JSON)
        return _checked(response)


def _checked(response: httpx.Response) -> bytes:
    if response.status_code != 200:
        raise status_error(response.status_code, response.content, response.headers)
    return response.content
