"""Trace context across the proxy, what spans may contain, and durations against the client's clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, format_span_id, format_trace_id

from app.main import create_app
from app.settings import Settings
from otel.asgi import HTTPTelemetryMiddleware, TraceContextPassThrough
from otel.setup import configure
from otel.telemetry import Telemetry, disabled, instrument_httpx
from tests.emulator import Emulator, Reply
from tests.otel.helpers import finished_spans, points, wait_idle
from tests.servers import Server, serve_in_thread
from tests.waiting import eventually

HI = [{"role": "user", "content": "the secret prompt"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _spans(telemetry: Telemetry, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return finished_spans(telemetry.tracer_provider, exporter, servers=1)


def test_incoming_traceparent_is_continued_and_sent_upstream(
    http: httpx.Client, emulator: Emulator, telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    parent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False}, headers={"traceparent": parent})
    spans = _spans(telemetry, span_exporter)
    genai = next(span for span in spans if span.name == "chat mistral-7b")
    server = next(span for span in spans if span.name == "POST /api/chat")
    assert format_trace_id(genai.context.trace_id) == TRACE_ID
    assert server.parent is not None and format_span_id(server.parent.span_id) == "00f067aa0ba902b7"
    sent = next(r for r in emulator.requests if r.path == "/v1/chat/completions").headers
    upstream_span = next(
        span for span in spans if span.name == "POST" and span.parent and span.parent.span_id == genai.context.span_id
    )
    assert sent["traceparent"] == f"00-{TRACE_ID}-{format_span_id(upstream_span.context.span_id)}-01"
    assert sent["x-request-id"] == TRACE_ID


def test_without_traceparent_a_new_trace_reaches_mistralrs(
    http: httpx.Client, emulator: Emulator, telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    http.post("/api/generate", json={"model": "mistral", "prompt": "x", "stream": False})
    genai = next(span for span in _spans(telemetry, span_exporter) if span.name == "chat mistral-7b")
    sent = next(r for r in emulator.requests if r.path == "/v1/chat/completions").headers
    assert sent["x-request-id"] == format_trace_id(genai.context.trace_id)
    assert sent["traceparent"].split("-")[1] == sent["x-request-id"]


def test_no_text_or_secrets_in_spans_by_default(
    http: httpx.Client, telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    headers = {"authorization": "Bearer sk-very-secret"}
    http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False}, headers=headers)
    dumped = json.dumps([dict(span.attributes or {}) for span in _spans(telemetry, span_exporter)], default=str)
    for secret in ("the secret prompt", "Hello from the emulator", "sk-very-secret", "Bearer"):
        assert secret not in dumped


@pytest.fixture
def capturing(upstream: Server, span_exporter: InMemorySpanExporter) -> Iterator[tuple[Server, Telemetry]]:
    environ = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    telemetry = configure("test", environ=environ, span_exporters=[span_exporter])
    with serve_in_thread(create_app(Settings(mistral_url=upstream.url), telemetry=telemetry)) as server:
        yield server, telemetry
    telemetry.shutdown()


def test_message_content_only_when_the_operator_opts_in(
    capturing: tuple[Server, Telemetry], span_exporter: InMemorySpanExporter
) -> None:
    server, telemetry = capturing
    with httpx.Client(base_url=server.url) as http:
        headers = {"authorization": "Bearer sk-very-secret"}
        http.post("/api/chat", json={"model": "mistral-7b", "messages": HI, "stream": False}, headers=headers)
    spans = _spans(telemetry, span_exporter)
    genai = next(span for span in spans if span.name == "chat mistral-7b")
    assert json.loads(str(genai.attributes["gen_ai.input.messages"])) == [  # type: ignore[index]
        {"role": "user", "content": "the secret prompt"}
    ]
    assert json.loads(str(genai.attributes["gen_ai.output.messages"])) == [  # type: ignore[index]
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello from the emulator."}]}
    ]
    assert "sk-very-secret" not in json.dumps([dict(span.attributes or {}) for span in spans], default=str)


def test_durations_agree_with_the_clients_clock(
    http: httpx.Client, emulator: Emulator, metric_reader: InMemoryMetricReader
) -> None:
    emulator.script(Reply(content="a b c d", delay=0.05))
    started = time.perf_counter()
    with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
        lines = response.iter_lines()
        next(lines)
        first_byte = time.perf_counter() - started
        list(lines)
    wall = time.perf_counter() - started
    wait_idle(metric_reader)
    duration = next(iter(points(metric_reader, "mistral_http_request_duration").values())).sum
    ttft = next(iter(points(metric_reader, "gen_ai.server.time_to_first_token").values())).sum
    assert 0 < ttft <= first_byte
    generate = next(iter(points(metric_reader, "mistral_generate_duration").values())).sum
    # The server's clock inside the client's, and the generation inside the request: three 50 ms gaps at least.
    assert 0.15 <= generate <= duration <= wall


def test_model_load_is_measured_and_traced(
    http: httpx.Client, emulator: Emulator, telemetry: Telemetry, span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:  # fmt: skip
    emulator.model("Qwen/Qwen3-4B").load_delay = 0.05
    http.post("/api/chat", json={"model": "Qwen/Qwen3-4B", "messages": HI, "stream": False})
    load = points(metric_reader, "mistral_model_load_duration")
    assert list(load) == [frozenset({("model", "Qwen/Qwen3-4B")})]
    assert next(iter(load.values())).sum >= 0.05
    spans = _spans(telemetry, span_exporter)
    genai = next(span for span in spans if span.name == "chat Qwen/Qwen3-4B")
    loading = next(span for span in spans if span.name == "load_model Qwen/Qwen3-4B")
    assert loading.parent is not None and loading.parent.span_id == genai.context.span_id


def test_upstream_up_follows_the_health_check(upstream: Server) -> None:
    reader = InMemoryMetricReader()
    telemetry = configure("test", environ={}, metric_readers=[reader])
    for url, expected in ((upstream.url, 1), ("http://127.0.0.1:9", 0)):
        key = frozenset({("upstream", url)})
        with serve_in_thread(create_app(Settings(mistral_url=url, health_interval=0.05), telemetry=telemetry)):
            eventually(lambda key=key: key in points(reader, "mistral_upstream_up"))  # type: ignore[misc]
        assert points(reader, "mistral_upstream_up")[key].value == expected
    telemetry.shutdown()


def test_with_telemetry_off_no_span_is_made_but_the_callers_trace_reaches_mistralrs(
    settings: Settings, emulator: Emulator
) -> None:
    app = create_app(settings, telemetry=disabled())
    assert [entry.cls for entry in app.user_middleware][:1] == [TraceContextPassThrough]
    telemetry_middleware = [entry for entry in app.user_middleware if entry.cls is HTTPTelemetryMiddleware]
    assert [entry.kwargs.get("tracer") for entry in telemetry_middleware] == [None]
    parent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    with serve_in_thread(app) as proxy, httpx.Client(base_url=proxy.url) as http:
        body = {"model": "mistral", "messages": HI, "stream": False}
        assert http.post("/api/chat", json=body, headers={"traceparent": parent}).status_code == 200
        assert http.post("/api/chat", json=body).status_code == 200
    continued, fresh = [r.headers for r in emulator.requests if r.path == "/v1/chat/completions"]
    assert continued["traceparent"] == parent
    assert "tracestate" not in continued and "baggage" not in continued
    assert continued["x-request-id"] == TRACE_ID
    assert "traceparent" not in fresh and "x-request-id" not in fresh


def test_no_query_value_reaches_a_span(
    http: httpx.Client, telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    http.get("/api/tags?token=hunter2&debug&api_key=s3cr3t")
    spans = _spans(telemetry, span_exporter)
    server = next(span for span in spans if span.name == "GET /api/tags")
    assert (server.attributes or {})["url.query"] == "token=REDACTED&debug=REDACTED&api_key=REDACTED"
    assert not [span for span in spans for value in (span.attributes or {}).values()
                if "hunter2" in str(value) or "s3cr3t" in str(value)]  # fmt: skip


def test_http_spans_follow_the_stable_semantic_conventions(
    http: httpx.Client, telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    http.post("/api/chat?x=1", json={"model": "mistral", "messages": HI, "stream": False})
    spans = _spans(telemetry, span_exporter)
    server = next(span for span in spans if span.name == "POST /api/chat")
    client = next(span for span in spans if span.name == "POST")
    attributes = dict(server.attributes or {})
    port = attributes["server.port"]
    assert isinstance(port, int) and isinstance(attributes.pop("client.port"), int)
    assert attributes == {
        "http.request.method": "POST", "http.route": "/api/chat", "http.response.status_code": 200,
        "url.scheme": "http", "url.path": "/api/chat", "url.query": "x=REDACTED", "server.address": "127.0.0.1",
        "server.port": port, "client.address": "127.0.0.1", "network.protocol.version": "1.1",
        "user_agent.original": f"python-httpx/{httpx.__version__}",
    }  # fmt: skip
    upstream = dict(client.attributes or {})
    assert {key: upstream[key] for key in ("http.request.method", "http.response.status_code", "server.address")} == {
        "http.request.method": "POST", "http.response.status_code": 200, "server.address": "127.0.0.1"}  # fmt: skip
    assert str(upstream["url.full"]).endswith("/v1/chat/completions")
    old = {"http.method", "http.url", "http.target", "http.status_code", "net.peer.ip", "net.host.name", "http.host"}
    assert not old & (set(attributes) | set(upstream))


def test_with_telemetry_off_the_upstream_client_only_propagates() -> None:
    """The contrib instrumentation would parse every URL into attributes of a span that records nothing."""
    on, off = httpx.AsyncClient(), httpx.AsyncClient()
    instrument_httpx(on, TracerProvider())
    instrument_httpx(off, NoOpTracerProvider())
    assert [vars(on).get("_is_instrumented_by_opentelemetry"), vars(off).get("_is_instrumented_by_opentelemetry")] == [
        True,
        None,
    ]
    assert [hook.__name__ for hook in off.event_hooks["request"]] == ["_propagate"]
