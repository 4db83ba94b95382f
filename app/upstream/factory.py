"""One place that builds the upstream the settings ask for: a mistral.rs server, or the engine in-process."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.settings import Settings
from app.upstream.base import Upstream
from app.upstream.http.client import HTTPUpstream
from app.upstream.http.transport import make_transport
from app.upstream.pool import Member, UpstreamPool
from app.upstream.timeouts import StreamTimeouts
from otel.telemetry import Telemetry

__all__ = ["make_upstream"]


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
