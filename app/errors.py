"""The proxy's error tree.

Every failure the proxy reports is a ``ProxyError``; one exception handler renders it as Ollama's
``{"error": "..."}`` (or OpenAI's envelope on ``/v1`` routes) with ``status_code``. ``error_type`` is a
short, stable class name for metrics and spans.

    ProxyError (500, internal)
    ├── ClientError (400, invalid_request)
    │   ├── InvalidRequest (400, invalid_request)
    │   │   └── ModelRequired (400, invalid_request)   "model is required", as Ollama says it
    │   ├── Unauthorized (401, unauthorized)          no valid API key (WWW-Authenticate)
    │   ├── ModelNotFound (404, model_not_found)
    │   ├── RequestTimeout (408, request_timeout)    the body stopped arriving
    │   ├── PayloadTooLarge (413, payload_too_large)
    │   ├── RateLimited (429, rate_limited)           over a tenant's limit (Retry-After, and the API's headers)
    │   └── ClientDisconnected (499, client_disconnected)  the client left before its answer was ready
    ├── NotSupported (501, not_supported)        an Ollama operation this proxy does not offer
    ├── Overloaded (503, overloaded)             too many generations in flight and waiting (Retry-After)
    │   └── QueueTimeout (503, queue_timeout)    waited in the queue for longer than allowed (Retry-After)
    ├── ShuttingDown (503, shutting_down)        the server stopped before the answer was complete
    └── UpstreamError (502, upstream_error)       mistral.rs failed us
        ├── UpstreamUnavailable (502, upstream_unavailable)
        │   └── UpstreamUnreachable (502, upstream_unavailable)   no connection made: another server may be tried
        ├── UpstreamTimeout (504, upstream_timeout)
        ├── UpstreamBusy (503, upstream_busy)
        ├── UpstreamStatusError (mapped status, upstream_status)
        └── UpstreamProtocolError (502, upstream_protocol)

Messages are shown to clients: they are short, never carry request text, and upstream bodies are
truncated.
"""

from __future__ import annotations

import math

__all__ = [
    "BUSY_MESSAGE",
    "ClientDisconnected",
    "ClientError",
    "InvalidRequest",
    "ModelNotFound",
    "ModelRequired",
    "NotSupported",
    "Overloaded",
    "PayloadTooLarge",
    "ProxyError",
    "QueueTimeout",
    "RateLimited",
    "RequestTimeout",
    "ShuttingDown",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UpstreamUnreachable",
    "Unauthorized",
    "truncate",
]

_MAX_MESSAGE = 500


def truncate(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Ollama's own wording, which clients may match on.
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"


class ProxyError(Exception):
    status_code = 500
    error_type = "internal"
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(ProxyError):
    status_code = 400
    error_type = "invalid_request"


class InvalidRequest(ClientError):
    pass


class ModelRequired(InvalidRequest):
    """Ollama's answer to a missing or empty ``model``."""

    def __init__(self) -> None:
        super().__init__("model is required")


class Unauthorized(ClientError):
    status_code = 401
    error_type = "unauthorized"
    headers = {"www-authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__("unauthorized: a valid API key is required (Authorization: Bearer …)")


class ModelNotFound(ClientError):
    status_code = 404
    error_type = "model_not_found"

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"model '{name}' not found")
        self.name = name


class RequestTimeout(ClientError):
    status_code = 408
    error_type = "request_timeout"


class PayloadTooLarge(ClientError):
    status_code = 413
    error_type = "payload_too_large"


class NotSupported(ProxyError):
    status_code = 501
    error_type = "not_supported"


class RateLimited(ClientError):
    """Over one of a tenant's limits: ``limit`` names it, ``allowance`` is its size, ``remaining`` what is left
    (may be below zero), ``wait`` the seconds until the request could pass."""

    status_code = 429
    error_type = "rate_limited"

    def __init__(self, limit: str, allowance: int, remaining: float, wait: float) -> None:
        super().__init__(f"rate limit exceeded: {limit.replace('_', ' ')} ({allowance}); retry in {math.ceil(wait)} s")
        self.limit, self.allowance, self.remaining, self.wait = limit, allowance, remaining, wait
        self.headers = {"Retry-After": str(max(1, math.ceil(wait)))}


class Overloaded(ProxyError):
    status_code = 503
    error_type = "overloaded"
    headers = {"Retry-After": "1"}

    def __init__(self, message: str = BUSY_MESSAGE) -> None:
        super().__init__(message)


class QueueTimeout(Overloaded):
    """A request that waited its whole allowance for a slot: the queue was not full, just slow."""

    error_type = "queue_timeout"

    def __init__(self, waited: float) -> None:
        super().__init__(f"server busy, please try again.  no slot became free within {waited:g} s")


class ShuttingDown(ProxyError):
    status_code = 503
    error_type = "shutting_down"
    headers = {"Retry-After": "5"}

    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class ClientDisconnected(ClientError):
    """The client went away before its answer was ready (Ollama's 499 ``request canceled``)."""

    status_code = 499
    error_type = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("request canceled")


class UpstreamError(ProxyError):
    status_code = 502
    error_type = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    error_type = "upstream_unavailable"


class UpstreamUnreachable(UpstreamUnavailable):
    """No connection could be made: nothing was sent, so another server may be tried."""


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "upstream_timeout"


class UpstreamBusy(UpstreamError):
    status_code = 503
    error_type = "upstream_busy"
    headers = {"Retry-After": "1"}


class UpstreamProtocolError(UpstreamError):
    error_type = "upstream_protocol"


class UpstreamStatusError(UpstreamError):
    """mistral.rs answered with an error status; ``status_code`` is what the client should see."""

    error_type = "upstream_status"

    def __init__(self, message: str, *, status_code: int, upstream_status: int) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.upstream_status = upstream_status
