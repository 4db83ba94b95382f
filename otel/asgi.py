"""Server-side HTTP telemetry as one pure ASGI middleware: the server span (stable HTTP semantic conventions), the
``mistral_http_*`` series and the access-log line, from one pass over the request's headers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS, CLIENT_PORT
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otel.access_log import log_request
from otel.exposition import METRICS_PATHS
from otel.genai import CLIENT_DISCONNECTED, error_type_of
from otel.metrics import ProxyMetrics
from otel.record import RequestRecord, recording
from otel.semconv import (
    ENDPOINT,
    ERROR_TYPE_LABEL,
    LIMIT,
    NO_ERROR,
    STATUS,
    TENANT,
    TENANT_ATTRIBUTE,
    UNMATCHED_ENDPOINT,
)

# The ASGI scope extension in which the HTTP server (app/http/server.py) leaves the status it answered a request
# with itself (``{"status": 400}``), when the request's framing broke after the app had begun.
FRAMING_ERROR = "mistral_ollama_proxy.framing_error"
BAD_FRAMING = "bad_framing"

__all__ = [
    "BAD_FRAMING",
    "EXCLUDED_PATHS",
    "FRAMING_ERROR",
    "HTTPTelemetryMiddleware",
    "RouteTemplates",
    "TraceContextPassThrough",
    "middleware",
]

# Scrapes are not traffic: counting them would hide an idle service from the no-requests alert.
EXCLUDED_PATHS = frozenset(METRICS_PATHS)
# A streamed write may carry several chunks (a burst); each ends with its delimiter.
_CHUNK_ENDS = {b"application/x-ndjson": b"\n", b"text/event-stream": b"\n\n"}
_TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage")
# semconv: any other method is reported as _OTHER, with the original in http.request.method_original.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


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


class HTTPTelemetryMiddleware:
    """The SERVER span, ``mistral_http_requests_total``, ``..._duration_seconds``, ``mistral_active_requests``,
    chunk counts, and the access-log line (``access_log``); no span without a ``tracer`` (telemetry off).

    The span is the request's current span while the application runs, so the GenAI and mistral.rs spans are
    its children; it continues a caller's ``traceparent`` and ends with the last byte. Its attributes are the
    stable HTTP ones only (no ``http.url``, ``net.peer.ip``), read in one pass over the headers; query values
    are redacted, and no header is copied. Chunks are counted locally and added once per response: an SDK call
    per chunk would cost more than relaying the chunk.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ProxyMetrics,
        templates: RouteTemplates,
        access_log: bool,
        tracer: Tracer | None = None,
    ) -> None:
        self.app, self._metrics, self._templates, self._access_log = app, metrics, templates, access_log
        self._tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXCLUDED_PATHS:
            await self.app(scope, receive, send)
            return
        with recording(scope) as record:
            await self._observe(scope, receive, send, record)

    async def _observe(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        started = time.perf_counter()
        template = self._templates(scope)
        endpoint = template or UNMATCHED_ENDPOINT
        exchange = _Exchange()
        span, token = self._start_span(scope, template) if self._tracer is not None else (None, None)

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
            if framing := scope.get("extensions", {}).get(FRAMING_ERROR, {}).get("status"):
                # The server itself answered a request whose framing broke mid-body (a bad chunk): the app only
                # saw its client leave, but the client was told this status.
                status, error_type, failure = framing, BAD_FRAMING, None
            attributes = {ENDPOINT: endpoint, STATUS: str(status), ERROR_TYPE_LABEL: error_type}
            seconds = time.perf_counter() - started
            metrics.http_requests.add(1, attributes)
            metrics.http_request_duration.record(seconds, {ENDPOINT: endpoint})
            if exchange.chunks:
                metrics.streaming_chunks.add(exchange.chunks, {ENDPOINT: endpoint})
            metrics.active_requests.add(-1)
            if record.tenant is not None:
                metrics.tenant_requests.add(1, {TENANT: record.tenant, ENDPOINT: endpoint, STATUS: str(status)})
                if record.limit is not None:
                    metrics.tenant_rate_limited.add(1, {TENANT: record.tenant, LIMIT: record.limit})
            if self._access_log:  # inside the span's context: the line carries its trace and span ids
                log_request(scope["method"], endpoint, status, seconds, error_type, record)
            if span is not None:
                _end_span(span, token, status if framing else exchange.status, failure, record.tenant)

    def _start_span(self, scope: Scope, template: str | None) -> tuple[Span, object]:
        assert self._tracer is not None
        carrier: dict[str, str] = {}
        host = user_agent = b""
        for name, value in scope["headers"]:
            if name in _TRACE_HEADERS:
                carrier[name.decode("latin-1")] = value.decode("latin-1")
            elif name == b"host":
                host = value
            elif name == b"user-agent":
                user_agent = value
        method: str = scope["method"]
        known = method in _KNOWN_METHODS
        attributes: dict[str, Any] = {
            HTTP_REQUEST_METHOD: method if known else "_OTHER",
            URL_SCHEME: scope.get("scheme", "http"),
            URL_PATH: scope["path"],
            NETWORK_PROTOCOL_VERSION: scope.get("http_version", "1.1"),
        }
        if not known:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = method
        if template:
            attributes[HTTP_ROUTE] = template
        if query := scope.get("query_string"):
            attributes[URL_QUERY] = _redacted(query)
        attributes.update(_server(host, scope.get("server")))
        if client := scope.get("client"):
            attributes[CLIENT_ADDRESS], attributes[CLIENT_PORT] = client[0], client[1]
        if user_agent:
            attributes[USER_AGENT_ORIGINAL] = user_agent.decode("latin-1")
        parent = propagate.extract(carrier) if carrier else None
        name = f"{method if known else 'HTTP'} {template}" if template else (method if known else "HTTP")
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        return span, context_api.attach(trace.set_span_in_context(span, parent))


def _end_span(span: Span, token: object, status: int, failure: str | None, tenant: str | None) -> None:
    """semconv for SERVER spans: a 5xx (or no answer at all) is an error; a 4xx is the client's, not the span's."""
    if tenant is not None:  # known only once the auth middleware, inside this span, has read the key
        span.set_attribute(TENANT_ATTRIBUTE, tenant)
    if status:
        span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
    if failure or not status or status >= 500:
        span.set_attribute(ERROR_TYPE, failure or (str(status) if status else "internal"))
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    context_api.detach(token)  # type: ignore[arg-type]


def _server(host: bytes, server: tuple[str, int | None] | None) -> dict[str, Any]:
    """``server.address`` and ``server.port`` from the Host header (the name the client used), else the socket."""
    if host:
        text = host.decode("latin-1")
        name, colon, port = text.rpartition(":") if not text.endswith("]") else ("", "", "")
        if colon and port.isdigit():
            return {SERVER_ADDRESS: name.strip("[]"), SERVER_PORT: int(port)}
        return {SERVER_ADDRESS: text.strip("[]")}
    if server:
        return {SERVER_ADDRESS: server[0], SERVER_PORT: server[1]} if server[1] else {SERVER_ADDRESS: server[0]}
    return {}


def _redacted(query: bytes) -> str:
    """Query values may be secrets (``?token=…``): the span keeps the keys only, as semconv's url.query allows."""
    keys = (part.split(b"=", 1)[0].decode("latin-1") for part in query.split(b"&") if part)
    return "&".join(f"{key}=REDACTED" for key in keys)


class TraceContextPassThrough:
    """With telemetry off, a caller's trace context still reaches mistral.rs, as the OpenTelemetry API promises.

    It costs one scan of the headers, and no span or attribute is built.
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


def middleware(
    routes: Sequence[BaseRoute], metrics: ProxyMetrics, tracer_provider: TracerProvider | None, access_log: bool
) -> list[Middleware]:
    """The telemetry middleware: one, owning the server span, the HTTP metrics and the access log."""
    tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
    return [Middleware(HTTPTelemetryMiddleware, metrics=metrics, templates=RouteTemplates(routes),
                       access_log=access_log, tracer=tracer)]  # fmt: skip
