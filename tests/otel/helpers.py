"""Reading what the in-memory metric reader and span exporter hold."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind


def points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    """Data points of one instrument, keyed by their attribute set."""
    data = reader.get_metrics_data()
    found: dict[frozenset[tuple[str, Any]], Any] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[frozenset((point.attributes or {}).items())] = point
    return found


def values(reader: InMemoryMetricReader, name: str, *keys: str) -> dict[tuple[Any, ...], Any]:
    """``{(label values in ``keys`` order): value or histogram count}`` of one instrument."""
    result: dict[tuple[Any, ...], Any] = {}
    for attributes, point in points(reader, name).items():
        labels = dict(attributes)
        assert set(labels) == set(keys), (name, labels)
        result[tuple(labels[key] for key in keys)] = (
            getattr(point, "value", None) if hasattr(point, "value") else point.count
        )
    return result


def wait_idle(reader: InMemoryMetricReader, timeout: float = 5.0) -> None:
    """Streams finish after their last byte: wait until a request has been counted and none is in flight (the
    in-flight gauge reads 0 before the first request too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = points(reader, "mistral_active_requests")
        counted = points(reader, "mistral_http_requests")
        if counted and active and all(point.value == 0 for point in active.values()):
            return
        time.sleep(0.01)
    raise AssertionError("requests still in flight")


def finished_spans(tracer_provider: Any, exporter: Any, servers: int, timeout: float = 5.0) -> list[ReadableSpan]:
    """Spans once ``servers`` SERVER spans have ended: a server span ends just after the client got its last byte."""
    deadline = time.monotonic() + timeout
    while True:
        tracer_provider.force_flush()
        spans: list[ReadableSpan] = list(exporter.get_finished_spans())
        if sum(span.kind is SpanKind.SERVER for span in spans) >= servers or time.monotonic() > deadline:
            return spans
        time.sleep(0.01)


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [span for span in spans if span.parent is not None and span.parent.span_id == parent.context.span_id]
