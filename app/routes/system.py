"""Liveness, readiness, the API version and the API's own description."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.generation import services_of
from app.http.responses import json_response
from app.routes.openapi import document
from app.upstream.watch import answers

__all__ = ["health", "openapi", "ready", "root", "version"]

_READY_TIMEOUT = 3.0


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def health(request: Request) -> Response:
    return PlainTextResponse("OK")  # mistral.rs's liveness answer, for a proxy chained behind another


async def ready(request: Request) -> Response:
    """Readiness: can mistral.rs (or the in-process model) serve right now?"""
    up = await answers(services_of(request).upstream.health, _READY_TIMEOUT)
    body = {"status": "ready" if up else "not ready", "upstream": "up" if up else "down"}
    return json_response(body, 200 if up else 503)


async def openapi(request: Request) -> Response:
    return json_response(document())


async def version(request: Request) -> Response:
    return json_response({"version": services_of(request).ollama_version})
