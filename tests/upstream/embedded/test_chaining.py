"""A proxy in HTTP mode in front of a proxy running the engine: the second stands in for a mistral.rs server."""

from __future__ import annotations

import ollama
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.main import create_app
from app.settings import Settings
from otel.setup import configure
from otel.telemetry import Telemetry
from tests.otel.helpers import finished_spans
from tests.servers import Server, serve_in_thread


def test_chained_proxies_answer_the_official_client_in_one_trace(
    proxy: Server, telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    front_spans = InMemorySpanExporter()
    front = configure("test", environ={}, span_exporters=[front_spans])
    with serve_in_thread(create_app(Settings(mistral_url=proxy.url), telemetry=front)) as gateway:
        with ollama.Client(host=gateway.url) as client:
            assert [m.model for m in client.list().models] == ["tiny:latest"]
            reply = client.chat(model="tiny", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 3})
            streamed = list(client.chat(model="tiny", messages=[{"role": "user", "content": "hi"}], stream=True,
                                        options={"num_predict": 3}))  # fmt: skip
    assert reply.eval_count == 3 and reply.done_reason == "length"
    assert streamed[-1].eval_count == 3
    gateway_spans = finished_spans(front.tracer_provider, front_spans, servers=3)
    engine_spans = finished_spans(telemetry.tracer_provider, span_exporter, servers=3)
    front.shutdown()
    asked = [span for span in gateway_spans if span.name == "chat tiny:latest"]
    served = [
        span for span in engine_spans if span.kind is SpanKind.SERVER and span.name == "POST /v1/chat/completions"
    ]
    assert len(asked) == len(served) == 2
    assert {span.context.trace_id for span in asked} == {span.context.trace_id for span in served}
    for span in served:  # the engine side's server span is a child of the gateway's upstream HTTP span
        parent = next(s for s in gateway_spans if span.parent and s.context.span_id == span.parent.span_id)
        assert parent.kind is SpanKind.CLIENT and parent.name == "POST"
