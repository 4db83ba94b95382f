"""All instruments, created once; plus the per-request record the HTTP middleware reads at the end."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import MeterProvider, get_meter_provider

from otel.semconv import OTHER, Buckets, Metric

__all__ = [
    "ModelLabels",
    "ProxyMetrics",
    "RequestRecord",
    "current_record",
    "record_error",
    "recording",
    "request_record",
]

_RECORD_KEY = "otel.request_record"
# The record of the request being served, for the GenAI invocation it starts (model and tokens for the access log).
_CURRENT: ContextVar[RequestRecord | None] = ContextVar("otel.current_request_record", default=None)


class ProxyMetrics:
    def __init__(self, meter_provider: MeterProvider | None = None, version: str = "") -> None:
        meter = (meter_provider or get_meter_provider()).get_meter("mistral-ollama-proxy", version)
        self.http_requests = meter.create_counter(
            Metric.HTTP_REQUESTS, unit="{request}", description="Finished HTTP requests"
        )
        self.http_request_duration = meter.create_histogram(
            Metric.HTTP_REQUEST_DURATION,
            unit="s",
            description="Request start to last byte sent",
            explicit_bucket_boundaries_advisory=Buckets.HTTP,
        )
        self.active_requests = meter.create_up_down_counter(
            Metric.ACTIVE_REQUESTS, unit="{request}", description="Requests in flight, streams included"
        )
        self.generate_duration = meter.create_histogram(
            Metric.GENERATE_DURATION,
            unit="s",
            description="Upstream call start to last token",
            explicit_bucket_boundaries_advisory=Buckets.GENERATE,
        )
        self.generate_tokens = meter.create_counter(
            Metric.GENERATE_TOKENS, unit="{token}", description="Completion tokens generated"
        )
        self.streaming_chunks = meter.create_counter(
            Metric.STREAMING_CHUNKS, unit="{chunk}", description="NDJSON/SSE chunks written to clients"
        )
        self.model_load_duration = meter.create_histogram(
            Metric.MODEL_LOAD_DURATION,
            unit="s",
            description="Measured model loads",
            explicit_bucket_boundaries_advisory=Buckets.MODEL_LOAD,
        )
        self.upstream_up = meter.create_gauge(
            Metric.UPSTREAM_UP, description="1 when mistral.rs answers its health check, else 0"
        )
        self.token_usage = meter.create_histogram(
            Metric.TOKEN_USAGE,
            unit="{token}",
            description="Input and output tokens per GenAI operation",
            explicit_bucket_boundaries_advisory=Buckets.TOKENS,
        )
        self.operation_duration = meter.create_histogram(
            Metric.OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=Buckets.OPERATION,
        )
        self.time_to_first_token = meter.create_histogram(
            Metric.TIME_TO_FIRST_TOKEN,
            unit="s",
            description="Request start to first token sent",
            explicit_bucket_boundaries_advisory=Buckets.TIME_TO_FIRST_TOKEN,
        )
        self.time_per_output_token = meter.create_histogram(
            Metric.TIME_PER_OUTPUT_TOKEN,
            unit="s",
            description="Decode time per output token after the first",
            explicit_bucket_boundaries_advisory=Buckets.TIME_PER_OUTPUT_TOKEN,
        )


class ModelLabels:
    """Bounded ``model`` label values: the first ``limit`` distinct models, then ``other``.

    The proxy only passes ids of models mistral.rs serves; the bound is a second line of defence.
    """

    def __init__(self, limit: int = 100) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, model: str) -> str:
        if model in self._seen:
            return model
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(model)
        return model


@dataclass(slots=True)
class RequestRecord:
    """What the application tells the HTTP middleware about a request it cannot see from the wire."""

    error_type: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


def request_record(scope: MutableMapping[str, Any]) -> RequestRecord | None:
    record: RequestRecord | None = scope.get("state", {}).get(_RECORD_KEY)
    return record


@contextmanager
def recording(scope: MutableMapping[str, Any]) -> Iterator[RequestRecord]:
    """A fresh record on the scope, current (``current_record``) while the request is served."""
    record = RequestRecord()
    scope.setdefault("state", {})[_RECORD_KEY] = record
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        _CURRENT.reset(token)


def current_record() -> RequestRecord | None:
    return _CURRENT.get()


def record_error(scope: MutableMapping[str, Any], error_type: str) -> None:
    """Mark the request as failed; the first error wins (a later disconnect does not hide an upstream fault)."""
    record = request_record(scope)
    if record is not None and record.error_type is None:
        record.error_type = error_type
