"""Error rendering, in one place: every error answer, and the request's ``error_type`` for the HTTP telemetry.

A ``ProxyError`` is Ollama's ``{"error": "..."}`` with its status and headers, Anthropic's error object on
``/v1/messages``, or OpenAI's envelope on the other ``/v1/`` routes; an unknown path or method is the plain text
Ollama's router (gin) answers. Once a response has started, ``error_line`` is what a stream writes instead.
"""

from __future__ import annotations

import logging
import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ExceptionHandler, Scope

from app.errors import NotSupported, ProxyError, RateLimited, truncate
from otel.genai import CLIENT_DISCONNECTED
from otel.record import record_error, record_limit

__all__ = [
    "EXCEPTION_HANDLERS",
    "JSON_ENCODER",
    "JSON_MEDIA_TYPE",
    "anthropic_error",
    "error_line",
    "openai_error",
    "render_error",
]

_log = logging.getLogger(__name__)
# The one JSON encoder and media type of the HTTP layer (responses.py frames with them too).
JSON_ENCODER = msgspec.json.Encoder()
JSON_MEDIA_TYPE = "application/json; charset=utf-8"
_HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}
# Anthropic's error types by status, as Ollama's /v1/messages names them (anthropic.NewError).
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error", 529: "overloaded_error"}  # fmt: skip
_ANTHROPIC_PATH = "/v1/messages"
# What ran out, as OpenAI's error types and both APIs' rate-limit headers name it (a per-minute limit only).
_RATE_KINDS = {"requests_per_minute": "requests", "tokens_per_minute": "tokens"}


def render_error(scope: Scope, exc: ProxyError) -> Response:
    """The answer to ``exc``, and ``exc.error_type`` on the request's record (the first error wins)."""
    record_error(scope, exc.error_type)
    path: str = scope["path"]
    headers = exc.headers
    if path == _ANTHROPIC_PATH or path.startswith(_ANTHROPIC_PATH + "/"):
        body = anthropic_error(exc)
        family = "anthropic"
    elif path.startswith("/v1/"):
        body = openai_error(exc)
        family = "openai"
        if isinstance(exc, RateLimited):  # as OpenAI's own: typed by what ran out, coded rate_limit_exceeded
            body["error"] |= {"type": _RATE_KINDS.get(exc.limit, "requests"), "code": "rate_limit_exceeded"}
    else:
        body = {"error": truncate(exc.message)}
        family = "ollama"
    if isinstance(exc, RateLimited):
        record_limit(scope, exc.limit)
        headers = {**(headers or {}), **rate_limit_headers(exc, family)}
    return Response(JSON_ENCODER.encode(body), exc.status_code, headers=headers, media_type=JSON_MEDIA_TYPE)


def rate_limit_headers(exc: RateLimited, family: str) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` on ``/v1/``, Anthropic's ``anthropic-ratelimit-*`` on ``/v1/messages``, for the
    limit that was hit (generations at once has no such header: ``Retry-After`` alone says when)."""
    kind = _RATE_KINDS.get(exc.limit)
    if kind is None or family == "ollama":
        return {}
    remaining = str(max(0, math.floor(exc.remaining)))
    # A full bucket comes back after the time to refill what is missing.
    full = (exc.allowance - exc.remaining) * 60 / exc.allowance
    if family == "openai":
        return {f"x-ratelimit-limit-{kind}": str(exc.allowance), f"x-ratelimit-remaining-{kind}": remaining,
                f"x-ratelimit-reset-{kind}": _go_duration(full)}  # fmt: skip
    reset = (datetime.now(UTC) + timedelta(seconds=full)).isoformat(timespec="seconds").replace("+00:00", "Z")
    prefix = f"anthropic-ratelimit-{kind}"
    return {f"{prefix}-limit": str(exc.allowance), f"{prefix}-remaining": remaining, f"{prefix}-reset": reset}


def _go_duration(seconds: float) -> str:
    """As OpenAI writes a reset: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def error_line(exc: BaseException) -> dict[str, str]:
    """The in-band error of a stream that failed after its first byte (Ollama's documented final line)."""
    if isinstance(exc, ProxyError):
        return {"error": truncate(exc.message)}
    _log.error("unexpected error while streaming", exc_info=exc)
    return {"error": "internal error"}


def openai_error(exc: ProxyError, kind: str | None = None) -> dict[str, Any]:
    # As Ollama's /v1 routes type them (openai.NewError), but a client error other than 404 stays a request error.
    if kind is None:
        kind = (
            "not_found_error"
            if exc.status_code == 404
            else "invalid_request_error"
            if exc.status_code < 500
            else ("api_error")
        )
    return {"error": {"message": truncate(exc.message), "type": kind, "param": None, "code": None}}


def anthropic_error(exc: ProxyError) -> dict[str, Any]:
    kind = _ANTHROPIC_TYPES.get(exc.status_code, "api_error")
    error = {"type": kind, "message": truncate(exc.message)}
    return {"type": "error", "error": error, "request_id": "req_" + secrets.token_hex(12)}


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
