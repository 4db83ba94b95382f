"""The application factory: routes, error rendering, CORS, telemetry and the upstream's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from app.auth import AuthMiddleware
from app.catalog import ModelCatalog
from app.drain import Drain
from app.errors import NotSupported, ProxyError, truncate
from app.health import watch_upstream
from app.limits import BodyLimitMiddleware, Limiter
from app.responses import json_response, openai_error
from app.routes import ROUTES
from app.service import Service
from app.settings import Settings
from app.upstream import HTTPUpstream, Upstream
from app.upstream.transport import make_transport
from otel.genai import CLIENT_DISCONNECTED
from otel.metrics import record_error
from otel.semconv import UPSTREAM
from otel.telemetry import Telemetry, disabled

__all__ = ["create_app"]

_log = logging.getLogger(__name__)
_HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}


def _http_upstream(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> HTTPUpstream:
    if not settings.mistral_url:
        raise RuntimeError("MISTRAL_URL is not set: point it at a mistral.rs server, e.g. http://localhost:8080")
    timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)
    transport = transport or make_transport(settings.upstream_transport)
    return HTTPUpstream(
        settings.mistral_url, timeout=timeout, stream_timeouts=settings.stream_timeouts, transport=transport
    )


async def _proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    record_error(request.scope, exc.error_type)
    if exc.status_code >= 500 and not isinstance(exc, NotSupported):  # 501 answers a request, it is no failure
        _log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    body = openai_error(exc) if request.url.path.startswith("/v1/") else {"error": truncate(exc.message)}
    response = json_response(body, exc.status_code)
    response.headers.update(exc.headers or {})
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    """Ollama's router (gin) answers unknown paths and wrong methods in plain text."""
    assert isinstance(exc, HTTPException)
    record_error(request.scope, _HTTP_ERROR_TYPES.get(exc.status_code, "http_error"))
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", 404)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", 405, headers=exc.headers)
    return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client left before its request body was complete: its failure, not the proxy's (nobody reads this)."""
    record_error(request.scope, CLIENT_DISCONNECTED)
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return json_response({"error": "internal error"}, 500)


def _cors(settings: Settings) -> list[Middleware]:
    if not settings.cors_allowed_origins:
        return []
    methods = ["GET", "HEAD", "POST", "DELETE", "OPTIONS"]
    return [Middleware(CORSMiddleware, allow_origins=list(settings.cors_allowed_origins), allow_methods=methods,
                       allow_headers=["*"])]  # fmt: skip


def create_app(
    settings: Settings,
    *,
    telemetry: Telemetry | None = None,
    upstream: Upstream | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    owns_telemetry: bool = False,
) -> Starlette:
    """Build the proxy. ``upstream`` replaces mistral.rs entirely; ``transport`` swaps only httpx's transport.

    With ``owns_telemetry`` the app flushes and shuts the telemetry down when it stops.
    """
    telemetry = telemetry or disabled()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = upstream or _http_upstream(settings, transport)
        client.instrument(telemetry)
        catalog = ModelCatalog(client, settings.model_aliases, settings.model_cache_ttl)
        limiter = Limiter(settings.max_concurrent, settings.max_queue, settings.queue_timeout)
        observer = telemetry.observer(*client.address)
        app.state.service = Service(settings, client, catalog, observer, limiter, app.state.drain)
        label = {UPSTREAM: settings.mistral_url or "embedded"}
        report = lambda up: telemetry.metrics.upstream_up.set(1 if up else 0, label)  # noqa: E731
        health = asyncio.create_task(watch_upstream(client.health, report, settings.health_interval))
        try:
            yield
        finally:
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health
            await client.aclose()
            if owns_telemetry:
                telemetry.shutdown()

    routes = [*ROUTES, *telemetry.routes()]
    middleware = [
        *telemetry.middleware(routes, access_log=settings.access_log),
        *_cors(settings),
        *([Middleware(AuthMiddleware, api_keys=settings.api_keys, metrics_token=settings.metrics_token)]
          if settings.api_keys or settings.metrics_token else []),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, read_timeout=settings.body_read_timeout),
    ]  # fmt: skip
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={ProxyError: _proxy_error, HTTPException: _http_error, ClientDisconnect: _client_gone,
                            Exception: _unexpected},  # fmt: skip
    )
    app.state.drain = Drain()
    return app
