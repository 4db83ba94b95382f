"""The only module that touches the OpenTelemetry SDK and exporters.

Standard variables are honoured: ``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``), ``OTEL_METRICS_EXPORTER`` (``prometheus``,
``otlp``, ``console``, ``none``, comma-separated), ``OTEL_EXPORTER_OTLP[_TRACES|_METRICS]_PROTOCOL``
(``grpc`` or ``http/protobuf``), and — read by the exporters and SDK themselves — the OTLP endpoint, headers,
timeout and certificate variables, ``OTEL_TRACES_SAMPLER[_ARG]``, ``OTEL_METRIC_EXPORT_INTERVAL`` and
``OTEL_METRICS_EXEMPLAR_FILTER``. Unlike the SDK's defaults, nothing is pushed unless an OTLP endpoint is
set or an exporter is named, and Prometheus pull (``/metrics``) is on by default. Logs (the access log and the
proxy's own) are exported only when ``OTEL_LOGS_EXPORTER`` names an exporter (``otlp``, ``console``), each record
with the trace context it was written in.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter, LogRecordExporter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, ExemplarFilter, ExemplarReservoir, MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import CollectorRegistry

from otel.metrics import INSTRUMENTS, METER_NAME, ProxyMetrics
from otel.record import current_record
from otel.semconv import TENANT_ATTRIBUTE
from otel.telemetry import Telemetry, disabled

__all__ = ["TelemetryConfigError", "configure"]

SERVICE_NAME = "mistral-ollama-proxy"
_TRUE = ("1", "true", "yes", "on")
_INTERNAL_METRICS = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"


class TelemetryConfigError(ValueError):
    pass


def _exporters(environ: Mapping[str, str], signal: str, default: str) -> list[str]:
    names = environ.get(f"OTEL_{signal}_EXPORTER", default)
    return [name.strip().lower() for name in names.split(",") if name.strip() and name.strip().lower() != "none"]


def _protocol(environ: Mapping[str, str], signal: str) -> str:
    protocol = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    if protocol not in ("grpc", "http/protobuf"):
        raise TelemetryConfigError(f"unsupported OTLP protocol {protocol!r}: use grpc or http/protobuf")
    return protocol


def _span_exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise TelemetryConfigError(f"unsupported OTEL_TRACES_EXPORTER {name!r}: use otlp, console or none")
    if _protocol(environ, "TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    return OTLPSpanExporter()


def _metric_reader(name: str, environ: Mapping[str, str], registry: CollectorRegistry) -> MetricReader:
    if name == "prometheus":
        return PrometheusMetricReader(scope_info_enabled=False, registry=registry)
    if name == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if name != "otlp":
        raise TelemetryConfigError(f"unsupported OTEL_METRICS_EXPORTER {name!r}: use prometheus, otlp, console or none")
    if _protocol(environ, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
    return PeriodicExportingMetricReader(OTLPMetricExporter())


def _log_exporter(name: str, environ: Mapping[str, str]) -> LogRecordExporter:
    if name == "console":
        return ConsoleLogRecordExporter()
    if name != "otlp":
        raise TelemetryConfigError(f"unsupported OTEL_LOGS_EXPORTER {name!r}: use otlp, console or none")
    if _protocol(environ, "LOGS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # type: ignore[assignment]
    return OTLPLogExporter()


def _export_logs(resource: Resource, exporters: Sequence[LogRecordExporter]) -> list[Callable[[], object]]:
    """Send the root logger's records to ``exporters``; returns the closers that flush and detach them."""
    if not exporters:
        return []
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for exporter in exporters:
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    # The exporters' own complaints (an unreachable collector) would feed the pipeline that is failing.
    handler.addFilter(lambda record: not record.name.startswith("opentelemetry"))
    root = logging.getLogger()
    root.addHandler(handler)
    return [lambda: root.removeHandler(handler), provider.force_flush, provider.shutdown]


def _resource(environ: Mapping[str, str], version: str) -> Resource:
    """The SDK's resource, with ``OTEL_RESOURCE_ATTRIBUTES`` honoured over the defaults: a pod name given as
    ``service.instance.id`` keeps one series per pod across restarts of its process (a fresh UUID otherwise)."""
    declared = _declared(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    return Resource.create(
        {
            **declared,
            "service.name": environ.get("OTEL_SERVICE_NAME") or declared.get("service.name") or SERVICE_NAME,
            "service.version": version,
            "service.instance.id": declared.get("service.instance.id") or str(uuid.uuid4()),
        }
    )


def _declared(value: str) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES``: comma-separated ``key=value`` pairs, values percent-encoded."""
    pairs = (item.split("=", 1) for item in value.split(",") if "=" in item)
    return {key.strip(): unquote(found.strip()) for key, found in pairs if key.strip()}


class _NoExemplars(ExemplarReservoir):
    def offer(self, value: float, time_unix_nano: int, attributes: Any, context: Any) -> None:
        pass

    def collect(self, point_attributes: Any) -> list[Any]:
        return []


def _exemplar_filter(
    environ: Mapping[str, str], metric_names: Sequence[str], extra: Sequence[MetricReader]
) -> ExemplarFilter | None:
    """Off when nothing would carry an exemplar: the Prometheus exporter renders none, so with /metrics alone
    every offer is wasted. Otherwise the operator's OTEL_METRICS_EXEMPLAR_FILTER, else the SDK's trace_based."""
    if set(metric_names) - {"prometheus"} or extra or environ.get("OTEL_METRICS_EXEMPLAR_FILTER"):
        return None
    return AlwaysOffExemplarFilter()


def _views() -> list[View]:
    """The proxy's instruments that carry no exemplars (``Instrument.exemplars``); the rest keep the SDK's."""
    return [
        View(
            instrument_name=spec.name,
            meter_name=METER_NAME,
            exemplar_reservoir_factory=lambda _: lambda **_: _NoExemplars(),
        )
        for spec in INSTRUMENTS
        if not spec.exemplars
    ]


class _TenantOnSpans(SpanProcessor):
    """A request's spans below its SERVER span carry its tenant (the SERVER span starts before the key is read,
    and takes it from the request's record when it ends)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        record = current_record()
        if record is not None and record.tenant is not None:
            span.set_attribute(TENANT_ATTRIBUTE, record.tenant)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _batch_processor(exporter: SpanExporter, meter_provider: MeterProvider) -> BatchSpanProcessor:
    """A batch span processor with the SDK's own semconv metrics (``otel_sdk_processor_span_processed_total``,
    ``error_type="queue_full"`` for spans dropped because the exporter fell behind; its queue's size and
    capacity): one record per exported batch. They are switched on for this processor alone, because the same
    variable would also count every span started and live, on the request path; ``false`` turns them off."""
    choice = os.environ.get(_INTERNAL_METRICS)
    os.environ[_INTERNAL_METRICS] = choice if choice is not None else "true"
    try:
        return BatchSpanProcessor(exporter, meter_provider=meter_provider)
    finally:
        if choice is None:
            del os.environ[_INTERNAL_METRICS]


def configure(
    version: str,
    environ: Mapping[str, str] | None = None,
    *,
    workers: int = 1,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    log_exporters: Sequence[LogRecordExporter] = (),
) -> Telemetry:
    """Build providers from the environment; the exporters and readers passed add more (tests use in-memory ones).

    With several worker processes, a pull endpoint would answer from one worker's registry at a time, so
    metrics must be pushed by OTLP and ``/metrics`` is not served.
    """
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return disabled()
    pushing = bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
    metric_names = _exporters(environ, "METRICS", "prometheus,otlp" if pushing else "prometheus")
    if workers > 1:
        if "otlp" not in metric_names:
            raise TelemetryConfigError(
                f"{workers} workers need metrics pushed by OTLP (set OTEL_EXPORTER_OTLP_ENDPOINT): each worker "
                "process has its own registry, so /metrics would answer with one worker's numbers at a time"
            )
        metric_names = [name for name in metric_names if name != "prometheus"]
    pushing_traces = bool(pushing or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    span_names = _exporters(environ, "TRACES", "otlp" if pushing_traces else "none")
    registry = CollectorRegistry(auto_describe=True) if "prometheus" in metric_names else None
    resource = _resource(environ, version)

    # Telemetry.shutdown flushes within a time limit; the SDK's own exit hooks would wait on the exporters' retries.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    readers = [_metric_reader(name, environ, registry) for name in metric_names if registry or name != "prometheus"]  # type: ignore[arg-type]
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[*readers, *metric_readers],
        views=_views(),
        exemplar_filter=_exemplar_filter(environ, metric_names, metric_readers),
        shutdown_on_exit=False,
    )
    tracer_provider.add_span_processor(_TenantOnSpans())
    for exporter in [*(_span_exporter(name, environ) for name in span_names), *span_exporters]:
        tracer_provider.add_span_processor(_batch_processor(exporter, meter_provider))
    log_names = _exporters(environ, "LOGS", "none")
    closing_logs = _export_logs(resource, [*(_log_exporter(name, environ) for name in log_names), *log_exporters])
    capture = environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower() in _TRUE
    return Telemetry(
        tracer_provider,
        meter_provider,
        ProxyMetrics(meter_provider, version),
        registry,
        capture,
        [
            *closing_logs,
            tracer_provider.force_flush,
            meter_provider.force_flush,
            tracer_provider.shutdown,
            meter_provider.shutdown,
        ],  # fmt: skip
    )
