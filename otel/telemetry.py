"""What the application holds of telemetry: providers, instruments and the hooks that attach them.

This module uses the OpenTelemetry API only; ``otel.setup.configure`` builds a real one from the SDK, and
``disabled()`` is the no-op one the proxy runs with when nothing is configured.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
from opentelemetry import metrics as metrics_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider, format_trace_id, get_current_span
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from otel.asgi import HTTPTelemetryMiddleware, RouteTemplates, TraceContextPassThrough, middleware
from otel.exposition import METRICS_PATHS, metrics_endpoint
from otel.genai import GenAIObserver
from otel.metrics import ProxyMetrics

__all__ = ["Telemetry", "disabled", "instrument_httpx"]

# The contrib httpx instrumentation (the upstream span) emits the old HTTP attributes (http.url, net.peer.ip) unless
# told otherwise, and reads this once, when it is first built; an operator's own choice (http/dup while dashboards
# migrate) wins.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
# The OTLP exporters retry a batch for up to 10 s each: an unreachable collector kept a SIGTERM'd proxy alive 25 s.
FLUSH_TIMEOUT = 5.0
_log = logging.getLogger(__name__)


@dataclass
class Telemetry:
    tracer_provider: trace_api.TracerProvider
    meter_provider: metrics_api.MeterProvider
    metrics: ProxyMetrics
    registry: CollectorRegistry | None = None
    capture_content: bool = False
    _closers: list[Callable[[], object]] = field(default_factory=list)
    enabled: bool = True

    def middleware(self, routes: Sequence[BaseRoute], access_log: bool = True) -> list[Middleware]:
        if not self.enabled:  # no span, no attributes: a header scan keeps a caller's trace context
            logged = [Middleware(HTTPTelemetryMiddleware, metrics=self.metrics, templates=RouteTemplates(routes),
                                 access_log=True)] if access_log else []  # fmt: skip
            return [Middleware(TraceContextPassThrough), *logged]
        return middleware(routes, self.metrics, self.tracer_provider, access_log)

    def routes(self) -> list[BaseRoute]:
        endpoint = metrics_endpoint(self.registry)
        return [Route(path, endpoint, methods=["GET"]) for path in METRICS_PATHS]

    def observer(self, server_address: str = "", server_port: int | None = None, upstream: str = "") -> GenAIObserver:
        return GenAIObserver(
            self.metrics,
            self.tracer_provider,
            server_address=server_address,
            server_port=server_port,
            upstream=upstream,
            capture_content=self.capture_content,
        )

    def shutdown(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Flush spans and metrics, then stop the exporters; give up, with a warning, after ``timeout`` seconds."""
        closers, self._closers = self._closers, []
        if not closers:
            return
        # A daemon thread: what is still exporting when the time is up does not hold the process.
        worker = threading.Thread(target=lambda: [close() for close in closers], name="telemetry-flush", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            _log.warning("telemetry not flushed within %g s (is the OTLP endpoint reachable?); going on", timeout)


def instrument_httpx(client: httpx.AsyncClient, tracer_provider: trace_api.TracerProvider | None) -> None:
    """A span per upstream call, ``traceparent`` sent, and the trace id as ``x-request-id`` for mistral.rs logs.

    With telemetry off there is no span to make: a caller's trace context is sent on without the instrumentation,
    whose work per request (URL and attribute parsing for a span that records nothing) is then wasted.
    """
    if isinstance(tracer_provider, NoOpTracerProvider):
        client.event_hooks["request"].append(_propagate)
        return
    HTTPXClientInstrumentor.instrument_client(
        client, tracer_provider=tracer_provider, meter_provider=NoOpMeterProvider()
    )
    client.event_hooks["request"].append(_request_id)


async def _request_id(request: httpx.Request) -> None:
    context = get_current_span().get_span_context()
    if context.is_valid and "x-request-id" not in request.headers:
        request.headers["x-request-id"] = format_trace_id(context.trace_id)


async def _propagate(request: httpx.Request) -> None:
    if get_current_span().get_span_context().is_valid:  # only a caller's context, passed through
        propagate.inject(request.headers)
        await _request_id(request)


def disabled() -> Telemetry:
    return Telemetry(NoOpTracerProvider(), NoOpMeterProvider(), ProxyMetrics(NoOpMeterProvider()), enabled=False)
