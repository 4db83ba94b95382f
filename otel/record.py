"""The per-request record: what the application tells the HTTP middleware (and the access log) about a request
that the wire does not show: its first error, its model, its tokens and its tenant."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestRecord", "current_record", "record_error", "record_limit", "recording", "request_record"]

_RECORD_KEY = "otel.request_record"
# The record of the request being served, for the GenAI invocation it starts (model and tokens for the access log).
_CURRENT: ContextVar[RequestRecord | None] = ContextVar("otel.current_request_record", default=None)


@dataclass(slots=True)
class RequestRecord:
    """What the application tells the HTTP middleware about a request it cannot see from the wire."""

    error_type: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tenant: str | None = None  # who sent it, when API keys are configured
    limit: str | None = None  # the tenant's limit it was refused for (rate_limited)


def request_record(scope: MutableMapping[str, Any]) -> RequestRecord | None:
    record: RequestRecord | None = scope.get("state", {}).get(_RECORD_KEY)
    return record


@contextmanager
def recording(scope: MutableMapping[str, Any]) -> Iterator[RequestRecord]:
    """A fresh record on the scope, current (``current_record``) while the request is served."""
    record = RequestRecord()
    scope.setdefault("state", {})[_RECORD_KEY] = record
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        _CURRENT.reset(token)


def current_record() -> RequestRecord | None:
    return _CURRENT.get()


def record_error(scope: MutableMapping[str, Any], error_type: str) -> None:
    """Mark the request as failed; the first error wins (a later disconnect does not hide an upstream fault)."""
    record = request_record(scope)
    if record is not None and record.error_type is None:
        record.error_type = error_type


def record_limit(scope: MutableMapping[str, Any], limit: str) -> None:
    """The tenant's limit the request was refused for (mistral_tenant_rate_limited_total)."""
    record = request_record(scope)
    if record is not None:
        record.limit = limit
