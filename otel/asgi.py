"""Server-side HTTP telemetry as pure ASGI middleware: the server span (contrib) and the ``mistral_http_*`` series."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.semconv.attributes.url_attributes import URL_QUERY
from opentelemetry.trace import Span, TracerProvider
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otel.access_log import log_request
from otel.exposition import METRICS_PATHS
from otel.genai import CLIENT_DISCONNECTED, error_type_of
from otel.metrics import ProxyMetrics
from otel.record import RequestRecord, recording
from otel.semconv import ENDPOINT, ERROR_TYPE_LABEL, NO_ERROR, STATUS, UNMATCHED_ENDPOINT

__all__ = ["EXCLUDED_PATHS", "HTTPMetricsMiddleware", "RouteTemplates", "TraceContextPassThrough", "middleware"]

# Scrapes are not traffic: counting them would hide an idle service from the no-requests alert.
EXCLUDED_PATHS = frozenset(METRICS_PATHS)
# A streamed write may carry several chunks (a burst); each ends with its delimiter.
_CHUNK_ENDS = {b"application/x-ndjson": b"\n", b"text/event-stream": b"\n\n"}
_SANITIZED_HEADERS = ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"]
_TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage")


class RouteTemplates:
    """The route template a request matched (``/api/blobs/{digest}``), for span names and the ``endpoint`` label."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        plain = [route for route in routes if isinstance(route, Route)]
        self._static = {route.path for route in plain if "{" not in route.path}
        self._dynamic = [route for route in plain if "{" in route.path]

    def __call__(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        if path in self._static:
            return path
        for route in self._dynamic:
            if route.matches(scope)[0] is not Match.NONE:
                return route.path
        return None


class _Exchange:
    __slots__ = ("status", "chunk_end", "chunks", "finished")

    def __init__(self) -> None:
        self.status = 0
        self.chunk_end = b""  # set for a streamed response
        self.chunks = 0
        self.finished = False

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            content_type = dict(message.get("headers", ())).get(b"content-type", b"")
            self.chunk_end = _CHUNK_ENDS.get(content_type.split(b";", 1)[0].strip(), b"")
        elif message["type"] == "http.response.body":
            if self.chunk_end and (body := message.get("body")):
                self.chunks += body.count(self.chunk_end)
            self.finished = not message.get("more_body", False)


class HTTPMetricsMiddleware:
    """``mistral_http_requests_total``, ``..._duration_seconds``, ``mistral_active_requests``, chunk counts, and
    the access-log line (``access_log``).

    Chunks are counted locally and added once per response: an SDK call per chunk would cost more than
    relaying the chunk.
    """

    def __init__(self, app: ASGIApp, metrics: ProxyMetrics, templates: RouteTemplates, access_log: bool) -> None:
        self.app, self._metrics, self._templates, self._access_log = app, metrics, templates, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXCLUDED_PATHS:
            await self.app(scope, receive, send)
            return
        with recording(scope) as record:
            await self._observe(scope, receive, send, record)

    async def _observe(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        started = time.perf_counter()
        endpoint = self._templates(scope) or UNMATCHED_ENDPOINT
        exchange = _Exchange()

        async def observed_send(message: Message) -> None:
            exchange.see(message)
            await send(message)

        metrics = self._metrics
        metrics.active_requests.add(1)
        failure: str | None = None
        try:
            await self.app(scope, receive, observed_send)
        except BaseException as exc:
            failure = error_type_of(exc) if not isinstance(exc, Exception) else "internal"
            raise
        finally:
            status = exchange.status or (499 if failure == CLIENT_DISCONNECTED else 500)
            error_type = failure or record.error_type or _inferred_error(exchange)
            attributes = {ENDPOINT: endpoint, STATUS: str(status), ERROR_TYPE_LABEL: error_type}
            seconds = time.perf_counter() - started
            metrics.http_requests.add(1, attributes)
            metrics.http_request_duration.record(seconds, {ENDPOINT: endpoint})
            if exchange.chunks:
                metrics.streaming_chunks.add(exchange.chunks, {ENDPOINT: endpoint})
            metrics.active_requests.add(-1)
            if self._access_log:
                log_request(scope["method"], endpoint, status, seconds, error_type, record)


class TraceContextPassThrough:
    """With telemetry off, a caller's trace context still reaches mistral.rs, as the OpenTelemetry API promises.

    It costs one scan of the headers; the contrib middleware it replaces builds a dozen attributes per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in _TRACE_HEADERS
        }
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = context_api.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context_api.detach(token)


def _inferred_error(exchange: _Exchange) -> str:
    if exchange.status and not exchange.finished:
        return CLIENT_DISCONNECTED  # the response began but its last byte was never sent
    if exchange.status >= 400:
        return "http_error"
    return NO_ERROR


def _redact_query(span: Span, scope: Scope) -> None:
    """Query values may be secrets (``?token=…``): the span keeps the keys only, as semconv's url.query allows."""
    query: bytes = scope.get("query_string", b"")
    if query and span.is_recording():
        keys = (part.split(b"=", 1)[0].decode("latin-1") for part in query.split(b"&") if part)
        span.set_attribute(URL_QUERY, "&".join(f"{key}=REDACTED" for key in keys))


def middleware(
    routes: Sequence[BaseRoute], metrics: ProxyMetrics, tracer_provider: TracerProvider | None, access_log: bool
) -> list[Middleware]:
    """The telemetry middleware stack, outermost first: the server span, then HTTP metrics and the access log."""
    templates = RouteTemplates(routes)

    def span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
        method = scope.get("method", "HTTP")
        template = templates(scope)
        return (f"{method} {template}", {"http.route": template}) if template else (method, {})

    return [
        Middleware(
            OpenTelemetryMiddleware,
            server_request_hook=_redact_query,
            excluded_urls=",".join(path + "$" for path in EXCLUDED_PATHS),
            default_span_details=span_details,
            tracer_provider=tracer_provider,
            # The mistral_http_* series already measure requests; skip contrib's duplicates.
            meter_provider=NoOpMeterProvider(),
            exclude_spans=["receive", "send"],
            http_capture_headers_sanitize_fields=_SANITIZED_HEADERS,
        ),
        Middleware(HTTPMetricsMiddleware, metrics=metrics, templates=templates, access_log=access_log),
    ]
