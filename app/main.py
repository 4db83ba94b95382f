"""The application factory: routes, error rendering, CORS and the upstream's lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.catalog import ModelCatalog
from app.errors import ProxyError, truncate
from app.responses import json_response, openai_error
from app.routes import ROUTES
from app.service import Service
from app.settings import Settings
from app.upstream import HTTPUpstream, Upstream

__all__ = ["create_app"]

_log = logging.getLogger(__name__)


def _http_upstream(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> HTTPUpstream:
    if not settings.mistral_url:
        raise RuntimeError("MISTRAL_URL is not set: point it at a mistral.rs server, e.g. http://localhost:8080")
    timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)
    return HTTPUpstream(settings.mistral_url, timeout=timeout, transport=transport)


async def _proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    if exc.status_code >= 500:
        _log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    if request.url.path.startswith("/v1/"):
        return json_response(openai_error(exc), exc.status_code)
    return json_response({"error": truncate(exc.message)}, exc.status_code)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Ollama's router (gin) answers unknown paths and wrong methods in plain text."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", 404)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", 405, headers=exc.headers)
    return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return json_response({"error": "internal error"}, 500)


def create_app(
    settings: Settings,
    *,
    upstream: Upstream | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """Build the proxy. ``upstream`` replaces mistral.rs entirely; ``transport`` swaps only httpx's transport."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = upstream or _http_upstream(settings, transport)
        catalog = ModelCatalog(client, settings.model_aliases, settings.model_cache_ttl)
        app.state.service = Service(settings, client, catalog)
        try:
            yield
        finally:
            await client.aclose()

    middleware = []
    if settings.cors_allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_allowed_origins),
                allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"],
            )
        )
    return Starlette(
        routes=ROUTES,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={ProxyError: _proxy_error, HTTPException: _http_error, Exception: _unexpected},
    )
