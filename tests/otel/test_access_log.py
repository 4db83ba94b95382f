"""The access log: one structured line per request, as text and as an OTLP log record carrying the trace context."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from app.main import create_app
from app.settings import Settings
from otel.access_log import ACCESS_LOGGER
from otel.setup import configure
from otel.telemetry import Telemetry, disabled
from tests.otel.helpers import finished_spans
from tests.servers import serve_in_thread
from tests.waiting import eventually

HI = [{"role": "user", "content": "the secret prompt"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def log_exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture
def logged(
    settings: Settings, log_exporter: InMemoryLogRecordExporter, span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[tuple[httpx.Client, Telemetry]]:  # fmt: skip
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    telemetry = configure("test", environ={}, span_exporters=[span_exporter], log_exporters=[log_exporter])
    try:
        with serve_in_thread(create_app(settings, telemetry=telemetry)) as server:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                yield http, telemetry
    finally:
        telemetry.shutdown()


def _written(caplog: pytest.LogCaptureFixture, count: int) -> None:
    # The line is written after the last byte went out: it may follow the client's reading of the answer.
    eventually(lambda: len([r for r in caplog.records if r.name == ACCESS_LOGGER]) == count)


def _access_records(exporter: InMemoryLogRecordExporter, count: int) -> list[ReadableLogRecord]:
    def arrived() -> list[ReadableLogRecord]:
        return [r for r in exporter.get_finished_logs() if r.instrumentation_scope.name == ACCESS_LOGGER]  # type: ignore[union-attr]

    eventually(lambda: len(arrived()) >= count)
    return arrived()


def test_a_streamed_chat_gets_one_line_with_model_tokens_and_the_server_spans_context(
    logged: tuple[httpx.Client, Telemetry], log_exporter: InMemoryLogRecordExporter,
    span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    http, telemetry = logged
    with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
        assert response.status_code == 200
        response.read()
    server = next(s for s in finished_spans(telemetry.tracer_provider, span_exporter, 1) if s.name == "POST /api/chat")
    _written(caplog, 1)
    telemetry.shutdown()  # flushes the log pipeline
    [record] = _access_records(log_exporter, 1)
    log = record.log_record
    assert (log.trace_id, log.span_id) == (server.context.trace_id, server.context.span_id)
    assert log.severity_text == "INFO" and log.event_name == "ollama_proxy.access"
    attributes = dict(log.attributes or {})
    duration = attributes.pop("ollama_proxy.duration_ms")
    assert isinstance(duration, float) and duration > 0
    assert attributes == {
        "http.request.method": "POST",
        "http.route": "/api/chat",
        "http.response.status_code": 200,  # and no error.type: a success has none (the line keeps its "none")
        "gen_ai.request.model": "mistral-7b",
        "gen_ai.usage.input_tokens": 6,
        "gen_ai.usage.output_tokens": 4,
    }
    trace_id, span_id = format_trace_id(server.context.trace_id), format_span_id(server.context.span_id)
    assert re.fullmatch(
        rf"method=POST route=/api/chat status=200 duration_ms={duration} model=mistral-7b input_tokens=6 "
        rf"output_tokens=4 error_type=none trace_id={trace_id} span_id={span_id}",
        str(log.body),
    )
    [line] = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert line == log.body
    assert "secret" not in line and all("secret" not in str(value) for value in attributes.values())


def test_a_request_without_a_generation_and_an_unknown_path_are_logged_without_model(
    logged: tuple[httpx.Client, Telemetry], log_exporter: InMemoryLogRecordExporter, caplog: pytest.LogCaptureFixture
) -> None:
    http, telemetry = logged
    assert http.get("/api/tags").status_code == 200
    assert http.get("/no/such/path").status_code == 404
    _written(caplog, 2)
    telemetry.shutdown()
    records = _access_records(log_exporter, 2)
    bodies = [re.sub(r"duration_ms=\S+ ", "", str(r.log_record.body)).rsplit(" trace_id=", 1)[0] for r in records]
    assert bodies == [
        "method=GET route=/api/tags status=200 error_type=none",
        "method=GET route=unmatched status=404 error_type=not_found",
    ]
    assert all("gen_ai.request.model" not in (r.log_record.attributes or {}) for r in records)


def test_access_log_off_writes_nothing(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    quiet = Settings(**{**settings.__dict__, "access_log": False})
    telemetry = configure("test", environ={})
    with serve_in_thread(create_app(quiet, telemetry=telemetry)) as server:
        assert httpx.get(f"{server.url}/api/tags").status_code == 200
    telemetry.shutdown()
    assert [r for r in caplog.records if r.name == ACCESS_LOGGER] == []


def test_with_telemetry_off_the_line_still_carries_the_callers_trace_id(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    with serve_in_thread(create_app(settings, telemetry=disabled())) as server:
        parent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
        reply = httpx.post(f"{server.url}/api/generate", json={"model": "mistral", "prompt": "x", "stream": False},
                           headers={"traceparent": parent})  # fmt: skip
        assert reply.status_code == 200
    [line] = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert re.fullmatch(
        rf"method=POST route=/api/generate status=200 duration_ms=[0-9.]+ model=mistral-7b input_tokens=4 "
        rf"output_tokens=4 error_type=none trace_id={TRACE_ID} span_id=00f067aa0ba902b7",
        line,
    )
