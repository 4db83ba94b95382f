"""The generation lifecycle: whatever happens, one span and one set of records per generation, and the slot freed.

The upstream here is the contract's other side in memory (``app.upstream.base.Upstream``); end-to-end runs of the same
paths, against the emulator over HTTP, are in ``routes/test_routes.py``, ``faults/test_reliability.py`` and ``otel/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from app.drain import Drain
from app.errors import Overloaded, UpstreamTimeout, UpstreamUnavailable
from app.generation import Generations, Run
from app.limiter import Limiter
from app.models import Entry, ModelCatalog
from app.ollama.translate.stream import decode_chunks
from app.settings import Settings
from app.upstream import ModelAction, ModelCard, ModelState, Route
from otel.setup import configure
from otel.telemetry import Telemetry
from tests.otel.helpers import values

CHUNK = b'{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}'
ANSWER = (b'{"id":"c2","model":"m","choices":[{"index":0,"message":{"content":"hi"},"finish_reason":"stop"}],'
          b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}')  # fmt: skip
ENTRY = Entry("m:latest", ModelCard(id="m", status="loaded"))


class _Payloads:
    def __init__(self, bursts: list[list[bytes]]) -> None:
        self.bursts, self.closed = bursts, False

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        for burst in self.bursts:
            yield burst

    async def aclose(self) -> None:
        self.closed = True


class _Upstream:
    logprob_scale = 1.0

    def __init__(self, *, refuse: bool = False, hang: bool = False) -> None:
        self.refuse, self.hang = refuse, hang
        self.streams: list[_Payloads] = []

    async def list_models(self) -> list[ModelCard]:
        return [ENTRY.card]

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState:
        return ModelState(model_id=model_id, status="loaded")

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> _Payloads:
        if self.refuse:
            raise UpstreamUnavailable("mistral.rs is unreachable")
        self.streams.append(_Payloads([[CHUNK], [CHUNK, CHUNK]]))
        return self.streams[-1]

    async def post(self, route: Route, body: dict[str, Any]) -> bytes:
        if self.hang:
            await asyncio.Event().wait()
        return ANSWER

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader) -> Iterator[Telemetry]:
    telemetry = configure("test", environ={}, span_exporters=[span_exporter], metric_readers=[metric_reader])
    yield telemetry
    telemetry.shutdown()


def _generations(telemetry: Telemetry, upstream: _Upstream) -> Generations:
    catalog = ModelCatalog(upstream, {}, 10.0)
    return Generations(Settings(), upstream, catalog, telemetry.observer(), Limiter(1, 0, 0.1), Drain())


def _spans(telemetry: Telemetry, exporter: InMemorySpanExporter) -> list[tuple[str, str | None, StatusCode]]:
    telemetry.tracer_provider.force_flush()  # type: ignore[attr-defined]
    return [(span.name, (span.attributes or {}).get("error.type"), span.status.status_code)  # type: ignore[misc]
            for span in exporter.get_finished_spans()]  # fmt: skip


async def _slot_is_free(generations: Generations) -> bool:
    try:
        await generations.limiter.acquire()
    except Overloaded:
        return False
    generations.limiter.release()
    return True


async def _read(run: Run, payloads: _Payloads, bursts: int | None = None) -> None:
    observed = run.observe(decode_chunks(payloads))
    async for _ in observed:
        bursts = None if bursts is None else bursts - 1
        if bursts == 0:
            await observed.aclose()
            return


def test_a_whole_answer_ends_the_generation_once_with_its_usage(
    telemetry: Telemetry, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    async def scenario() -> bool:
        generations = _generations(telemetry, _Upstream())
        async with generations.run(route="chat", entry=ENTRY, body={"model": "m"}) as run:
            assert not await _slot_is_free(generations)  # the run holds the one slot
            assert await run.post() == ANSWER
        return await _slot_is_free(generations)

    assert asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("chat m", None, StatusCode.UNSET)]
    assert values(metric_reader, "gen_ai.client.token.usage", "gen_ai.operation.name", "gen_ai.provider.name",
                  "gen_ai.request.model", "gen_ai.response.model", "gen_ai.token.type") == {
        ("chat", "mistral_rs", "m", "m", "input"): 1, ("chat", "mistral_rs", "m", "m", "output"): 1}  # fmt: skip


def test_a_stream_read_to_its_end_succeeds_and_is_closed(
    telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    upstream = _Upstream()

    async def scenario() -> None:
        async with _generations(telemetry, upstream).run(route="chat", entry=ENTRY, body={}) as run:
            await _read(run, await run.open())

    asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("chat m", None, StatusCode.UNSET)]
    assert [stream.closed for stream in upstream.streams] == [True]


def test_a_stream_left_before_its_end_is_the_clients_failure(
    telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    upstream = _Upstream()

    async def scenario() -> bool:
        generations = _generations(telemetry, upstream)
        async with generations.run(route="completion", entry=ENTRY, body={}) as run:
            await _read(run, await run.open(), bursts=1)
        return await _slot_is_free(generations)

    assert asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("text_completion m", "client_disconnected", StatusCode.ERROR)]
    assert [stream.closed for stream in upstream.streams] == [True]


def test_a_failure_after_the_first_byte_is_the_one_recorded(
    telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    async def scenario() -> None:
        async with _generations(telemetry, _Upstream()).run(route="chat", entry=ENTRY, body={}) as run:
            await _read(run, await run.open(), bursts=1)
            run.fail(UpstreamTimeout("mistral.rs stalled"))
            run.fail(UpstreamUnavailable("later, and not the cause"))

    asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("chat m", "upstream_timeout", StatusCode.ERROR)]


def test_an_upstream_that_refuses_fails_the_generation_and_frees_the_slot(
    telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    async def scenario() -> bool:
        generations = _generations(telemetry, _Upstream(refuse=True))
        with pytest.raises(UpstreamUnavailable):
            async with generations.run(route="chat", entry=ENTRY, body={}) as run:
                await run.open()
        return await _slot_is_free(generations)

    assert asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("chat m", "upstream_unavailable", StatusCode.ERROR)]


def test_a_cancelled_generation_ends_as_the_clients_and_frees_the_slot(
    telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    async def scenario() -> bool:
        generations = _generations(telemetry, _Upstream(hang=True))

        async def generate() -> None:
            async with generations.run(route="chat", entry=ENTRY, body={}) as run:
                await run.post()

        task = asyncio.create_task(generate())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await _slot_is_free(generations)

    assert asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("chat m", "client_disconnected", StatusCode.ERROR)]


def test_no_slot_no_generation(telemetry: Telemetry, span_exporter: InMemorySpanExporter) -> None:
    async def scenario() -> None:
        generations = _generations(telemetry, _Upstream())
        async with generations.run(route="embeddings", entry=ENTRY, body={}) as run:
            with pytest.raises(Overloaded):
                async with generations.run(route="embeddings", entry=ENTRY, body={}):
                    pass
            await run.post()

    asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("embeddings m", None, StatusCode.UNSET)]


def test_closing_twice_counts_once(telemetry: Telemetry, span_exporter: InMemorySpanExporter) -> None:
    async def scenario() -> None:
        generations = _generations(telemetry, _Upstream())
        run = await generations.run(route="chat", entry=ENTRY, body={}).__aenter__()
        await run.post()
        await run.close(None)
        await run.close(UpstreamTimeout("too late to matter"))
        assert await _slot_is_free(generations)

    asyncio.run(scenario())
    assert _spans(telemetry, span_exporter) == [("chat m", None, StatusCode.UNSET)]
