"""The composition root: the application assembled from every layer (the route table, the middleware stack, error
rendering, the generation layer and the upstream's lifetime), and ``make_upstream``, the one place that picks the
engine the settings ask for. Only the commands import it; nothing below does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.drain import Drain
from app.generation import Generations, Services
from app.http.auth import AuthMiddleware
from app.http.body_limit import BodyLimitMiddleware
from app.http.errors import EXCEPTION_HANDLERS
from app.limiter import Limiter
from app.models import Entry, ModelCatalog
from app.routes import ROUTES
from app.settings import Settings
from app.tenants import Directory, KeyFile, Quotas, SharedStore, current_tenant, may_use
from app.upstream import Upstream
from app.upstream.http.client import HTTPUpstream
from app.upstream.http.transport import make_transport
from app.upstream.pool import Member, UpstreamPool
from app.upstream.timeouts import StreamTimeouts
from app.upstream.watch import watch_upstream
from otel.loop_lag import watch_event_loop
from otel.metrics import ProxyMetrics
from otel.semconv import LIMIT, TENANT, UPSTREAM
from otel.telemetry import Telemetry, disabled

__all__ = ["create_app", "make_upstream"]


def _observed(settings: Settings) -> tuple[str, int | None, str]:
    """``server.address``, ``server.port`` and the ``upstream`` label of every generation, when they are the same
    for all: one mistral.rs server, or the engine in-process (no server). A pool places each generation itself."""
    endpoints = settings.endpoints
    if not endpoints:
        return "", None, "embedded"
    if len(endpoints) > 1:
        return "", None, ""
    parsed = httpx.URL(endpoints[0].url)
    return parsed.host, parsed.port, endpoints[0].label


def _visible(entry: Entry) -> bool:
    """A model is there for the tenant being served if its allowed models name it (app/tenants)."""
    return may_use(current_tenant(), (entry.name, entry.id))


def _limits(directory: Directory) -> Iterator[tuple[float, dict[str, str]]]:
    """mistral_tenant_limit: each configured per-minute and concurrent limit, from the keys file as last read."""
    for tenant in directory.tenants:
        for name in ("requests_per_minute", "tokens_per_minute", "concurrent"):
            if (value := getattr(tenant.limits, name)) is not None:
                yield float(value), {TENANT: tenant.name, LIMIT: name}


def _reporter(metrics: ProxyMetrics, name: str) -> Callable[[bool], None]:
    label = {UPSTREAM: name}
    return lambda up: metrics.upstream_up.set(1 if up else 0, label)


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
    """Build the proxy. ``upstream`` replaces the one ``make_upstream`` would build; ``transport`` swaps only
    httpx's transport to a mistral.rs server.

    With ``owns_telemetry`` the app flushes and shuts the telemetry down when it stops.
    """
    telemetry = telemetry or disabled()
    drain = Drain()
    keys = KeyFile(settings.api_keys, settings.api_keys_file)
    quotas = Quotas(store=SharedStore(settings.quota_store_url) if settings.quota_store_url else None)
    telemetry.metrics.tenant_limits.source = lambda: _limits(keys.directory)
    telemetry.metrics.quota_store_up.source = lambda: [] if quotas.store_up is None else [(float(quotas.store_up), {})]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = upstream or make_upstream(settings, telemetry, transport=transport)
        # Only a keys file names tenants with model lists: without one, no request pays for asking.
        visible = _visible if settings.api_keys_file else None
        catalog = ModelCatalog(client, settings.model_aliases, settings.model_cache_ttl, visible=visible)
        limiter = Limiter(settings.max_concurrent, settings.max_queue, settings.queue_timeout)
        observer = telemetry.observer(*_observed(settings))
        generations = Generations(settings, client, catalog, observer, limiter, drain, quotas)
        app.state.services = Services(generations, catalog, client, settings.bounds, settings.ollama_version)
        interval = settings.health_interval
        watchers = [
            asyncio.create_task(watch_upstream(name, check, _reporter(telemetry.metrics, name), interval))
            for name, check in client.health_checks().items()
        ]
        watchers.append(asyncio.create_task(watch_event_loop(telemetry.metrics.event_loop_lag.record)))
        watchers.append(asyncio.create_task(keys.watch()))
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await client.aclose()
            await quotas.aclose()
            if owns_telemetry:
                telemetry.shutdown()

    routes = [*ROUTES, *telemetry.routes()]
    middleware = [
        *telemetry.middleware(routes, access_log=settings.access_log),
        *_cors(settings),
        *([Middleware(AuthMiddleware, keys=keys, metrics_token=settings.metrics_token, quotas=quotas)]
          if not keys.directory.open or settings.api_keys_file or settings.metrics_token else []),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, read_timeout=settings.body_read_timeout,
                   max_items=settings.bounds.body_items),
    ]  # fmt: skip
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    app.state.drain = drain
    return app


def make_upstream(
    settings: Settings, telemetry: Telemetry, *, transport: httpx.AsyncBaseTransport | None = None
) -> Upstream:
    """With ``MISTRAL_URL``, a client of that server, or a pool of clients when there are several (``transport``
    swaps httpx's); without, the engine, loaded here.

    Loading blocks for as long as the model takes (seconds): call it at start-up, before serving.
    """
    if endpoints := settings.endpoints:
        timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)
        clients = [
            HTTPUpstream(
                endpoint.url,
                timeout=timeout,
                stream_timeouts=settings.stream_timeouts,
                transport=transport or make_transport(settings.upstream_transport),
                tracer_provider=telemetry.tracer_provider,
                name=endpoint.label,
                logprob_base=settings.mistral_logprob_base,
            )
            for endpoint in endpoints
        ]
        if len(clients) == 1:
            return clients[0]
        members = [Member(client, endpoint.weight) for client, endpoint in zip(clients, endpoints, strict=True)]
        return UpstreamPool(members)
    # Imported here: the engine's extension module is large, and a server client never needs it.
    from app.upstream.embedded import EmbeddedUpstream, default_cache_dir, resolve

    cache = Path(settings.model_cache_dir) if settings.model_cache_dir else default_cache_dir()
    spec = resolve(settings.model, cache)
    engine = EmbeddedUpstream(
        spec,
        concurrency=settings.engine_concurrency,
        max_queue=settings.engine_max_queue,
        # The first-byte and idle timeouts find a silent server; the engine in-process is known to be working when
        # it is silent (reading a long prompt, or another sequence's, on a busy CPU): the deadline alone bounds it.
        timeouts=StreamTimeouts(first_byte=settings.request_timeout, idle=settings.request_timeout),
        tracer_provider=telemetry.tracer_provider,
    )
    with telemetry.observer().loading(spec.name):
        engine.load()
    return engine
