"""OTLP push, over gRPC and HTTP/protobuf, to receivers the tests start."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import ollama
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from app.main import create_app
from app.settings import Settings
from otel.setup import configure
from tests.otel.otlp_receiver import Received, grpc_receiver, http_receiver
from tests.servers import Server, serve_in_thread

HI = [{"role": "user", "content": "hi"}]
INSTRUMENTS = {
    "mistral_http_requests",
    "mistral_http_request_duration",
    "mistral_active_requests",
    "mistral_generate_duration",
    "mistral_generate_tokens",
    "mistral_streaming_chunks",
    "mistral_upstream_up",
    "gen_ai.client.token.usage",
    "gen_ai.client.operation.duration",
    "gen_ai.server.time_to_first_token",
    "gen_ai.server.time_per_output_token",
}
Receiver = Callable[[], AbstractContextManager[tuple[str, Received]]]


@pytest.fixture(params=[("grpc", grpc_receiver), ("http/protobuf", http_receiver)], ids=["grpc", "http"])
def pushed(request: pytest.FixtureRequest, upstream: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    protocol, receiver = request.param
    with receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        telemetry = configure(
            "test", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
        )
        assert telemetry.registry is not None  # pull stays on beside push
        with serve_in_thread(create_app(Settings(mistral_url=upstream.url), telemetry=telemetry)) as proxy:
            client = ollama.Client(host=proxy.url)
            list(client.chat(model="mistral-7b", messages=HI, stream=True))
            client.chat(model="mistral-7b", messages=HI)
            client.close()
        telemetry.shutdown()  # flushes both signals
        yield received


def test_spans_arrive_with_the_same_names(pushed: Received) -> None:
    names = sorted(span.name for span in pushed.spans())
    assert names.count("POST /api/chat") == 2
    assert names.count("chat mistral-7b") == 2
    resource = pushed.traces[0].resource_spans[0].resource
    attributes = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert attributes["service.name"] == "mistral-ollama-proxy"
    assert attributes["service.version"] == "test"
    assert len(attributes["service.instance.id"]) == 36


def test_metrics_arrive_with_the_same_names_and_exemplars(pushed: Received) -> None:
    metrics = pushed.metric_list()
    assert INSTRUMENTS <= {metric.name for metric in metrics}
    trace_ids = {span.trace_id for span in pushed.spans()}
    for name in ("mistral_http_request_duration", "gen_ai.client.operation.duration", "mistral_generate_duration"):
        # Exemplars ride on the export after their measurement (each collection starts a fresh reservoir).
        points = [point for metric in metrics if metric.name == name for point in metric.histogram.data_points]
        exemplars = [exemplar for point in points for exemplar in point.exemplars]
        assert exemplars, name  # one per bucket hit
        assert {exemplar.trace_id for exemplar in exemplars} <= trace_ids, name
    generate = next(m for m in metrics if m.name == "mistral_generate_duration").histogram.data_points[0]
    assert list(generate.explicit_bounds)[:3] == [0.1, 0.25, 0.5]


def test_counts_carry_no_exemplars(pushed: Received) -> None:
    """Only durations do (the dashboard links them to traces): an exemplar offer costs as much as a record."""
    metrics = pushed.metric_list()
    for name in ("mistral_http_requests", "mistral_generate_tokens", "gen_ai.client.token.usage"):
        found = [m for m in metrics if m.name == name]
        points = [p for m in found for p in (*m.sum.data_points, *m.histogram.data_points)]
        assert points and not [exemplar for point in points for exemplar in point.exemplars], name


def test_with_metrics_pulled_only_no_exemplar_is_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Prometheus exporter renders no exemplars: with /metrics alone, offering them would be wasted work."""
    pulled = configure("test", environ={})
    read = configure("test", environ={}, metric_readers=[InMemoryMetricReader()])  # a reader that keeps them
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "always_on")  # the SDK reads it itself
    chosen = configure("test", environ={"OTEL_METRICS_EXEMPLAR_FILTER": "always_on"})
    try:
        configs = [t.meter_provider._sdk_config for t in (pulled, read, chosen)]  # type: ignore[attr-defined]
        assert [type(config.exemplar_filter).__name__ for config in configs] == [
            "AlwaysOffExemplarFilter", "TraceBasedExemplarFilter", "AlwaysOnExemplarFilter"]  # fmt: skip
    finally:
        for telemetry in (pulled, read, chosen):
            telemetry.shutdown()
