"""Error rendering, in one place: every error answer, and the request's ``error_type`` for the HTTP telemetry.

A ``ProxyError`` is Ollama's ``{"error": "..."}`` with its status and headers, or OpenAI's envelope on ``/v1/``
routes; an unknown path or method is the plain text Ollama's router (gin) answers. Once a response has started,
``error_line`` is what a stream writes instead.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ExceptionHandler, Scope

from app.errors import NotSupported, ProxyError, truncate
from otel.genai import CLIENT_DISCONNECTED
from otel.record import record_error

__all__ = ["EXCEPTION_HANDLERS", "JSON_ENCODER", "JSON_MEDIA_TYPE", "error_line", "openai_error", "render_error"]

_log = logging.getLogger(__name__)
# The one JSON encoder and media type of the HTTP layer (responses.py frames with them too).
JSON_ENCODER = msgspec.json.Encoder()
JSON_MEDIA_TYPE = "application/json; charset=utf-8"
_HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}


def render_error(scope: Scope, exc: ProxyError) -> Response:
    """The answer to ``exc``, and ``exc.error_type`` on the request's record (the first error wins)."""
    record_error(scope, exc.error_type)
    body = openai_error(exc) if scope["path"].startswith("/v1/") else {"error": truncate(exc.message)}
    return Response(JSON_ENCODER.encode(body), exc.status_code, headers=exc.headers, media_type=JSON_MEDIA_TYPE)


def error_line(exc: BaseException) -> dict[str, str]:
    """The in-band error of a stream that failed after its first byte (Ollama's documented final line)."""
    if isinstance(exc, ProxyError):
        return {"error": truncate(exc.message)}
    _log.error("unexpected error while streaming", exc_info=exc)
    return {"error": "internal error"}


def openai_error(exc: ProxyError, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ("invalid_request_error" if exc.status_code < 500 else "api_error")
    return {"error": {"message": truncate(exc.message), "type": kind, "param": None, "code": None}}


async def _proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    if exc.status_code >= 500 and not isinstance(exc, NotSupported):  # 501 answers a request, it is no failure
        _log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    return render_error(request.scope, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
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
    return Response(JSON_ENCODER.encode({"error": "internal error"}), 500, media_type=JSON_MEDIA_TYPE)


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    ProxyError: _proxy_error,
    HTTPException: _http_error,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}
