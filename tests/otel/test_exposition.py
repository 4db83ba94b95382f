"""``/metrics`` as Prometheus reads it: exact series names, label sets and bucket boundaries."""

from __future__ import annotations

import gzip

import httpx
import ollama
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from otel.semconv import Buckets
from tests.servers import Server

HI = [{"role": "user", "content": "hi"}]
GENAI = {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "server_address", "server_port"}


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
    assert set(_scrape(proxy)) == {
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


def test_mistral_series_labels(proxy: Server) -> None:
    families = _scrape(proxy)
    assert sorted((name, tuple(sorted(labels.items()))) for name, labels in families["mistral_http_requests"]) == [
        ("mistral_http_requests_total", (("endpoint", "/api/chat"), ("error_type", "none"), ("status", "200"))),
        ("mistral_http_requests_total", (("endpoint", "/api/embed"), ("error_type", "none"), ("status", "200"))),
        ("mistral_http_requests_total", (("endpoint", "unmatched"), ("error_type", "not_found"), ("status", "404"))),
    ]
    assert families["mistral_active_requests"] == [("mistral_active_requests", {})]
    assert families["mistral_generate_tokens"] == [("mistral_generate_tokens_total", {"model": "mistral-7b"})]
    assert families["mistral_streaming_chunks"] == [("mistral_streaming_chunks_total", {"endpoint": "/api/chat"})]
    assert [labels for _, labels in families["mistral_upstream_up"]][0].keys() == {"upstream"}
    requests = _labels(families["mistral_http_request_duration_seconds"], "_bucket")
    assert [b["le"] for b in requests if b["endpoint"] == "/api/chat"] == _le(Buckets.HTTP)
    generate = _labels(families["mistral_generate_duration_seconds"], "_bucket")
    assert [b["le"] for b in generate] == _le(Buckets.GENERATE)
    assert {frozenset(b) for b in generate} == {frozenset({"model", "le"})}


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
