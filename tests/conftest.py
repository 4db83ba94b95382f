from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import ollama
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.main import create_app
from app.settings import Settings
from otel.setup import configure
from otel.telemetry import Telemetry
from tests.emulator import Emulator
from tests.servers import Server, serve_in_thread


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def upstream(emulator: Emulator) -> Iterator[Server]:
    with serve_in_thread(emulator.app) as server:
        yield server


@pytest.fixture
def settings(upstream: Server) -> Settings:
    # TEST_UPSTREAM_TRANSPORT=httpx runs the suite over httpx's own transport.
    transport = os.environ.get("TEST_UPSTREAM_TRANSPORT", "aiohttp")
    return Settings(
        mistral_url=upstream.url, model_aliases={"mistral:latest": "mistral-7b"}, upstream_transport=transport
    )  # type: ignore[arg-type]


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def telemetry(span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader) -> Iterator[Telemetry]:
    """Telemetry fully on (Prometheus registry, traces), exporting to memory; no OTEL_* variables apply."""
    telemetry = configure("test", environ={}, span_exporters=[span_exporter], metric_readers=[metric_reader])
    yield telemetry
    telemetry.shutdown()


@pytest.fixture
def proxy(settings: Settings, telemetry: Telemetry) -> Iterator[Server]:
    with serve_in_thread(create_app(settings, telemetry=telemetry)) as server:
        yield server


@pytest.fixture
def client(proxy: Server) -> Iterator[ollama.Client]:
    client = ollama.Client(host=proxy.url)
    yield client
    client.close()


@pytest.fixture
def http(proxy: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        yield client
