"""API keys, off unless keys are configured: ``Authorization: Bearer`` or Anthropic's ``x-api-key`` (Claude Code
sends that one), found by their SHA-256 digest in the tenants' directory (app/tenants/); never logged or traced.
The request's record names the tenant it came from, for the telemetry."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import RateLimited, Unauthorized
from app.http.errors import render_error
from app.tenants import ANONYMOUS, KeyFile, Quotas, reset_serving, serving
from otel.exposition import METRICS_PATHS
from otel.record import request_record

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
    def __init__(self, app: ASGIApp, keys: KeyFile, metrics_token: str | None, quotas: Quotas | None = None) -> None:
        self.app = app
        self._keys = keys  # an empty directory: the API is open, whatever protects the metrics
        self._metrics = (metrics_token.encode(),) if metrics_token else None
        self._quotas = quotas or Quotas()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in METRICS_PATHS:
            allowed = self._metrics is None or any(_matches(key, self._metrics) for key in _presented(scope))
        elif path in PUBLIC_PATHS or (directory := self._keys.directory).open:
            allowed = True
        else:
            tenant = directory.identify(_presented(scope))
            if (record := request_record(scope)) is not None:
                record.tenant = tenant.name if tenant is not None else ANONYMOUS  # unknown callers fold into one
            if tenant is None:
                await render_error(scope, Unauthorized())(scope, receive, send)
                return
            try:
                await self._quotas.admit(tenant)
            except RateLimited as exc:
                await render_error(scope, exc)(scope, receive, send)
                return
            token = serving(tenant)
            try:
                await self.app(scope, receive, send)
            finally:
                reset_serving(token)
            return
        if allowed:
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
