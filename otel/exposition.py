"""``/metrics`` from a Starlette route: the OpenTelemetry Prometheus reader's registry, without its HTTP server."""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

__all__ = ["METRICS_PATHS", "metrics_endpoint"]

# Where the Prometheus exposition is served: Prometheus's convention, and Ollama's /api prefix.
METRICS_PATHS = ("/metrics", "/api/metrics")


def metrics_endpoint(registry: CollectorRegistry | None) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        if registry is None:
            return PlainTextResponse("metrics are not served here: see OTEL_METRICS_EXPORTER and --workers", 404)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = encoder(registry)
        if gzip_accepted(request.headers.get("accept-encoding", "")):
            return Response(gzip.compress(body, 6), media_type=content_type, headers={"content-encoding": "gzip"})
        return Response(body, media_type=content_type)

    return metrics
