"""API keys, off unless keys are configured: ``Authorization: Bearer`` or Anthropic's ``x-api-key`` (Claude Code
sends that one); compared in constant time, never logged or traced."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import Unauthorized
from app.http.errors import render_error
from otel.exposition import METRICS_PATHS

__all__ = ["PUBLIC_PATHS", "AuthMiddleware"]

# Liveness, readiness and metrics stay reachable for orchestrators and scrapers (metrics may have their own token).
PUBLIC_PATHS = frozenset({"/", "/health", "/ready"})


def _matches(presented: bytes, keys: tuple[bytes, ...]) -> bool:
    # Compare against every key, so that timing does not tell which (or how many) keys exist.
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented, key)
    return found


class AuthMiddleware:
    def __init__(self, app: ASGIApp, api_keys: tuple[str, ...], metrics_token: str | None) -> None:
        self.app = app
        # No API keys: the API is open, whatever protects the metrics.
        self._keys = tuple(key.encode() for key in api_keys) or None
        self._metrics = (metrics_token.encode(),) if metrics_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        keys = self._metrics if path in METRICS_PATHS else None if path in PUBLIC_PATHS else self._keys
        if keys is None or any(_matches(presented, keys) for presented in _presented(scope)):
            await self.app(scope, receive, send)
            return
        await render_error(scope, Unauthorized())(scope, receive, send)


def _presented(scope: Scope) -> list[bytes]:
    """The credentials the request carries: a bearer token, an ``x-api-key``, or both."""
    found = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                found.append(token.strip())
        elif name == b"x-api-key" and value.strip():
            found.append(value.strip())
    return found
