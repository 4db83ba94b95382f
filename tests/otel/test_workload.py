"""A scripted workload, then every count, histogram and span checked against what was sent."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import ollama
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel.telemetry import Telemetry
from tests.emulator import Emulator, Reply
from tests.otel.helpers import children, finished_spans, points, values, wait_idle
from tests.servers import Server

HI = [{"role": "user", "content": "hi"}]
MODEL = "mistral-7b"


@pytest.fixture
def workload(proxy: Server, emulator: Emulator, metric_reader: InMemoryMetricReader) -> Iterator[None]:
    client = ollama.Client(host=proxy.url)
    client.chat(model="mistral", messages=HI)
    list(client.chat(model="mistral", messages=HI, stream=True))
    client.generate(model="mistral", prompt="hi")
    list(client.generate(model="mistral", prompt="hi", stream=True))
    client.embed(model="mistral", input=["a", "b"])
    with pytest.raises(ollama.ResponseError):
        client.chat(model="nope", messages=HI)
    with httpx.Client(base_url=proxy.url) as http:
        emulator.script(Reply(status=500, error_message="the engine failed"))
        body = {"model": "mistral", "messages": HI}
        assert http.post("/v1/chat/completions", json=body).status_code == 502  # mistral.rs answers 500
        emulator.script(Reply(content="one two three", error_after=2))
        assert http.post("/api/chat", json={"model": "mistral", "messages": HI}).text.endswith('"}\n')
        emulator.script(Reply(content="a b c d", delay=0.5))
        with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
            next(response.iter_lines())  # then hang up mid-stream
    client.close()
    wait_idle(metric_reader)
    yield


@pytest.mark.usefixtures("workload")
def test_every_request_is_counted_with_its_status_and_error_type(metric_reader: InMemoryMetricReader) -> None:
    assert values(metric_reader, "mistral_http_requests", "endpoint", "status", "error_type") == {
        ("/api/chat", "200", "none"): 2,
        ("/api/generate", "200", "none"): 2,
        ("/api/embed", "200", "none"): 1,
        ("/api/chat", "404", "model_not_found"): 1,
        ("/v1/chat/completions", "502", "upstream_status"): 1,
        ("/api/chat", "200", "upstream_error"): 1,
        ("/api/chat", "200", "client_disconnected"): 1,
    }
    assert values(metric_reader, "mistral_http_request_duration", "endpoint") == {
        ("/api/chat",): 5,
        ("/api/generate",): 2,
        ("/api/embed",): 1,
        ("/v1/chat/completions",): 1,
    }
    assert values(metric_reader, "mistral_active_requests") == {(): 0}


@pytest.mark.usefixtures("workload")
def test_tokens_and_generations(metric_reader: InMemoryMetricReader, upstream: Server) -> None:
    # 4 answers of 4 tokens by usage; the broken stream relayed 2 tokens and the abandoned one 1. The one upstream
    # is named by its URL.
    tokens = values(metric_reader, "mistral_generate_tokens", "model", "upstream")
    assert tokens == {(MODEL, upstream.url): 4 * 4 + 2 + 1}
    assert values(metric_reader, "mistral_generate_duration", "model", "upstream") == {(MODEL, upstream.url): 4}
    # Streamed lines: 5 per good stream, 2 + an error line, and the 1 line the leaving client read.
    assert values(metric_reader, "mistral_streaming_chunks", "endpoint") == {("/api/chat",): 9, ("/api/generate",): 5}


@pytest.mark.usefixtures("workload")
def test_genai_metrics(metric_reader: InMemoryMetricReader, upstream: Server) -> None:
    base = ("mistral_rs", MODEL, "127.0.0.1")
    keys = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "server.address", "server.port")
    durations = points(metric_reader, "gen_ai.client.operation.duration")
    counted = {(dict(a)["gen_ai.operation.name"], dict(a).get("error.type")): p.count for a, p in durations.items()}
    assert counted == {
        ("chat", None): 4,
        ("embeddings", None): 1,
        ("chat", "upstream_status"): 1,
        ("chat", "upstream_error"): 1,
        ("chat", "client_disconnected"): 1,
    }
    usage = {dict(a)["gen_ai.token.type"] + "/" + dict(a)["gen_ai.operation.name"]: (p.count, p.sum)
             for a, p in points(metric_reader, "gen_ai.client.token.usage").items()}  # fmt: skip
    assert usage == {"input/chat": (4, 16), "output/chat": (6, 19), "input/embeddings": (1, 2)}
    ttft = points(metric_reader, "gen_ai.server.time_to_first_token")
    # Time to first token exists for streams only: 2 good ones, the broken one and the abandoned one.
    assert [(tuple(dict(a)[k] for k in keys[1:4]), p.count) for a, p in ttft.items()] == [(base, 4)]
    assert {dict(a)["ollama_proxy.upstream"] for a in [*durations, *ttft]} == {upstream.url}
    # The model that answered, wherever an answer began; a request refused before any answer has none.
    answered = {dict(a)["gen_ai.request.model"]: dict(a).get("gen_ai.response.model") for a in ttft}
    assert answered == {MODEL: MODEL}
    refused = [dict(a) for a in durations if dict(a).get("error.type") == "upstream_status"]
    assert [attributes.get("gen_ai.response.model") for attributes in refused] == [None]
    assert sum(p.count for p in points(metric_reader, "gen_ai.server.time_per_output_token").values()) == 3


@pytest.mark.usefixtures("workload")
def test_each_generation_has_a_complete_span_tree(span_exporter: InMemorySpanExporter, telemetry: Telemetry) -> None:
    spans = finished_spans(telemetry.tracer_provider, span_exporter, servers=9)
    servers = [span for span in spans if span.kind is SpanKind.SERVER]
    assert sorted(span.name for span in servers) == sorted(
        ["POST /api/chat"] * 5 + ["POST /api/generate"] * 2 + ["POST /api/embed", "POST /v1/chat/completions"]
    )
    for server in servers:
        genai = [span for span in children(spans, server) if span.name.startswith(("chat ", "embeddings "))]
        if server.attributes and server.attributes.get("http.response.status_code") == 404:
            assert genai == []
            continue
        assert len(genai) == 1, server.name
        upstream = children(spans, genai[0])
        assert [span.name for span in upstream] == ["POST"]
        assert upstream[0].kind is SpanKind.CLIENT
        assert upstream[0].end_time <= genai[0].end_time  # type: ignore[operator]
        assert genai[0].end_time <= server.end_time  # type: ignore[operator]


@pytest.mark.usefixtures("workload")
def test_genai_span_attributes(span_exporter: InMemorySpanExporter, telemetry: Telemetry) -> None:
    spans = finished_spans(telemetry.tracer_provider, span_exporter, servers=9)
    genai = [span for span in spans if span.name == f"chat {MODEL}"]
    ok = [span for span in genai if span.status.status_code is StatusCode.UNSET]
    assert len(ok) == 4
    streamed = [span for span in ok if span.attributes and span.attributes.get("gen_ai.request.stream")]
    assert len(streamed) == 2
    attributes = dict(streamed[0].attributes or {})
    first_chunk = attributes.pop("gen_ai.response.time_to_first_chunk")
    assert isinstance(first_chunk, float) and 0 < first_chunk < 1
    response_id = attributes.pop("gen_ai.response.id")
    assert isinstance(response_id, str) and response_id.isdigit()
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mistral_rs",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.stream": True,
        # what the request sampled with: it gave no options, so Ollama's defaults (repeat_penalty has no key)
        "gen_ai.request.temperature": 0.8,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 4,
        "gen_ai.usage.output_tokens": 4,
        "server.address": "127.0.0.1",
        "server.port": streamed[0].attributes["server.port"],  # type: ignore[index]
    }
    failed = {
        span.attributes["error.type"]: span.status
        for span in genai
        if span.attributes and "error.type" in span.attributes
    }
    assert set(failed) == {"upstream_status", "upstream_error", "client_disconnected"}
    assert all(status.status_code is StatusCode.ERROR for status in failed.values())
    # No prompt or completion text anywhere unless the operator opts in.
    text = json.dumps([dict(span.attributes or {}) for span in spans], default=str)
    assert "Hello from the emulator" not in text and '"hi"' not in text
