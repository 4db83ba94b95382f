"""``/metrics`` as Prometheus reads it: exact series names, label sets and bucket boundaries."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Sequence

import httpx
import ollama
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from otel.semconv import Buckets
from otel.setup import configure
from tests.emulator import Emulator
from tests.servers import Server, serve_in_thread

HI = [{"role": "user", "content": "hi"}]

HI = [{"role": "user", "content": "hi"}]
GENAI = {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
         "server_address", "server_port", "ollama_proxy_upstream"}  # fmt: skip


def _le(buckets: tuple[float, ...]) -> list[str]:
    return [*(repr(float(bound)) for bound in buckets), "+Inf"]


def _scrape(proxy: Server, path: str = "/metrics") -> dict[str, list[tuple[str, dict[str, str]]]]:
    client = ollama.Client(host=proxy.url)
    list(client.chat(model="mistral", messages=HI, stream=True))
    client.embed(model="mistral", input="a")
    client.close()
    with httpx.Client(base_url=proxy.url) as http:
        http.get("/api/nope")
        text = http.get(path).text
    families: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = [(sample.name, sample.labels) for sample in family.samples]
    return families


def _labels(samples: list[tuple[str, dict[str, str]]], suffix: str = "") -> list[dict[str, str]]:
    return [labels for name, labels in samples if name.endswith(suffix)]


def test_series_names(proxy: Server) -> None:
    names = set(_scrape(proxy))
    sdk = {name for name in names if name.startswith("otel_sdk_")}
    # The SDK's own: its span queue from the start, the spans it processed once it has exported some.
    queue = {"otel_sdk_processor_span_queue_size", "otel_sdk_processor_span_queue_capacity"}
    assert queue <= sdk <= queue | {"otel_sdk_processor_span_processed"}
    assert names - sdk == {
        "target_info",
        "mistral_http_requests",
        "mistral_http_request_duration_seconds",
        "mistral_active_requests",
        "mistral_generate_duration_seconds",
        "mistral_generate_tokens",
        "mistral_streaming_chunks",
        "mistral_upstream_up",
        "gen_ai_client_token_usage",
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_server_time_per_output_token_seconds",
    }


def test_mistral_series_labels(proxy: Server, upstream: Server) -> None:
    families = _scrape(proxy)
    assert sorted((name, tuple(sorted(labels.items()))) for name, labels in families["mistral_http_requests"]) == [
        ("mistral_http_requests_total", (("endpoint", "/api/chat"), ("error_type", "none"), ("status", "200"))),
        ("mistral_http_requests_total", (("endpoint", "/api/embed"), ("error_type", "none"), ("status", "200"))),
        ("mistral_http_requests_total", (("endpoint", "unmatched"), ("error_type", "not_found"), ("status", "404"))),
    ]
    assert families["mistral_active_requests"] == [("mistral_active_requests", {})]
    assert families["mistral_generate_tokens"] == [
        ("mistral_generate_tokens_total", {"model": "mistral-7b", "upstream": upstream.url})
    ]
    assert families["mistral_streaming_chunks"] == [("mistral_streaming_chunks_total", {"endpoint": "/api/chat"})]
    assert families["mistral_upstream_up"] == [("mistral_upstream_up", {"upstream": upstream.url})]
    requests = _labels(families["mistral_http_request_duration_seconds"], "_bucket")
    assert [b["le"] for b in requests if b["endpoint"] == "/api/chat"] == _le(Buckets.HTTP)
    generate = _labels(families["mistral_generate_duration_seconds"], "_bucket")
    assert [b["le"] for b in generate] == _le(Buckets.GENERATE)
    assert {frozenset(b) for b in generate} == {frozenset({"model", "upstream", "le"})}


def test_genai_series_labels_and_buckets(proxy: Server) -> None:
    families = _scrape(proxy)
    usage = _labels(families["gen_ai_client_token_usage"], "_count")
    assert {(u["gen_ai_operation_name"], u["gen_ai_token_type"]) for u in usage} == {
        ("chat", "input"), ("chat", "output"), ("embeddings", "input"),
    }  # fmt: skip
    assert all(set(u) == GENAI | {"gen_ai_token_type"} for u in usage)
    buckets = _labels(families["gen_ai_client_token_usage"], "_bucket")
    assert [b["le"] for b in buckets if b["gen_ai_token_type"] == "output"] == _le(Buckets.TOKENS)
    for name, bounds in [
        ("gen_ai_client_operation_duration_seconds", Buckets.OPERATION),
        ("gen_ai_server_time_to_first_token_seconds", Buckets.TIME_TO_FIRST_TOKEN),
        ("gen_ai_server_time_per_output_token_seconds", Buckets.TIME_PER_OUTPUT_TOKEN),
    ]:
        samples = _labels(families[name], "_bucket")
        chat = [b for b in samples if b["gen_ai_operation_name"] == "chat"]
        assert [b["le"] for b in chat] == _le(bounds), name
        assert all(set(b) == GENAI | {"le"} for b in chat), name


def test_api_metrics_openmetrics_and_gzip(proxy: Server) -> None:
    _scrape(proxy)
    with httpx.Client(base_url=proxy.url) as http:
        plain = http.get("/api/metrics")
        assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
        open_metrics = http.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.endswith("# EOF\n")
        names = {family.name for family in parse_openmetrics(open_metrics.text)}
        assert {"mistral_http_requests", "mistral_generate_tokens"} <= names
        with http.stream("GET", "/metrics", headers={"accept-encoding": "gzip"}) as zipped:
            assert zipped.headers["content-encoding"] == "gzip"
            body = gzip.decompress(b"".join(zipped.iter_raw())).decode()
        assert body.startswith("# HELP") and "mistral_generate_tokens_total" in body


def test_scrapes_are_not_counted_as_traffic(proxy: Server) -> None:
    with httpx.Client(base_url=proxy.url) as http:
        http.get("/metrics")
        text = http.get("/api/metrics").text
    assert "mistral_http_requests_total" not in text


class _Stuck(SpanExporter):
    """An exporter that cannot keep up: its first export waits until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        return SpanExportResult.SUCCESS


def test_spans_dropped_by_a_lagging_exporter_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")
    stuck = _Stuck()
    telemetry = configure("test", environ={}, span_exporters=[stuck])
    try:
        with (
            serve_in_thread(Emulator().app) as upstream,
            serve_in_thread(create_app(Settings(mistral_url=upstream.url), telemetry=telemetry)) as proxy,
        ):
            for _ in range(3):  # three spans each, into a queue of two behind an export that waits
                httpx.post(f"{proxy.url}/api/chat", json={"model": "mistral-7b", "messages": HI, "stream": False})
            families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{proxy.url}/metrics").text)}
    finally:
        stuck.release.set()
        telemetry.shutdown()
    processed = families["otel_sdk_processor_span_processed"].samples
    dropped = [s for s in processed if s.labels.get("error_type") == "queue_full"]
    assert [sorted(s.labels) for s in dropped] == [["error_type", "otel_component_name", "otel_component_type"]]
    assert dropped[0].labels["otel_component_type"] == "batching_span_processor" and dropped[0].value >= 5
    capacity = families["otel_sdk_processor_span_queue_capacity"].samples
    assert [s.value for s in capacity] == [2.0]
