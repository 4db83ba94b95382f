"""Each tenant's limits, enforced before mistral.rs is called: requests and tokens per minute, generations at once,
and the models it may use (``may_use``, which the catalog asks). Per process: with several replicas each holds
its own counts.

Requests and tokens per minute are token buckets (a minute's allowance, refilled continuously), so a tenant
under its limit is never refused and one over it learns exactly when to come back. A generation takes its
estimated input tokens up front (the text of the request, four characters a token); when it ends, the tokens it
really used are charged, so the bucket may go below zero and the next request waits for it to refill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from app.errors import RateLimited
from app.models.names import normalize
from app.tenants.directory import Tenant

__all__ = ["Lease", "Quotas", "current_tenant", "estimate_tokens", "may_use", "reset_serving", "serving"]

_TENANT: ContextVar[Tenant | None] = ContextVar("app.tenant", default=None)


def current_tenant() -> Tenant | None:
    """The tenant the request being served came from (set by the auth middleware), None with no keys."""
    return _TENANT.get()


def serving(tenant: Tenant | None) -> Token[Tenant | None]:
    """Make ``tenant`` current while the request is served; ``reset_serving`` with the token ends that."""
    return _TENANT.set(tenant)


def reset_serving(token: Token[Tenant | None]) -> None:
    _TENANT.reset(token)


@dataclass
class _Bucket:
    per_minute: int
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        self.level = min(self.per_minute, self.level + (now - self.stamp) * self.per_minute / 60)
        self.stamp = now

    def wait(self, amount: float) -> float:
        """Seconds until ``amount`` could be taken (0: now)."""
        return 0.0 if self.level >= amount else (amount - self.level) * 60 / self.per_minute


@dataclass
class _State:
    requests: _Bucket | None = None
    tokens: _Bucket | None = None
    active: int = 0


@dataclass
class Lease:
    """One generation's hold on its tenant's quota; ``end`` gives it back and charges what it used."""

    quotas: Quotas
    tenant: Tenant
    estimate: int
    ended: bool = field(default=False)

    def end(self, used_tokens: int | None) -> None:
        if self.ended:
            return
        self.ended = True
        self.quotas._end(self, used_tokens)


class Quotas:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}

    def admit(self, tenant: Tenant) -> None:
        """A request of ``tenant``'s: RateLimited past its requests per minute."""
        limit = tenant.limits.requests_per_minute
        if limit is None:
            return
        state, now = self._state(tenant), self._clock()
        bucket = state.requests = _fitted(state.requests, limit, now)
        if (wait := bucket.wait(1)) > 0:
            raise RateLimited("requests_per_minute", limit, bucket.level, wait)
        bucket.level -= 1

    def begin(self, tenant: Tenant, estimate: int) -> Lease:
        """A generation of ``tenant``'s: RateLimited past its generations at once or its tokens per minute. (Its
        models are the catalog's to hide: ``may_use``.)"""
        limits = tenant.limits
        state, now = self._state(tenant), self._clock()
        if limits.concurrent is not None and state.active >= limits.concurrent:
            raise RateLimited("concurrent", limits.concurrent, 0, 1.0)
        if limits.tokens_per_minute is not None:
            bucket = state.tokens = _fitted(state.tokens, limits.tokens_per_minute, now)
            # An estimate above the whole allowance could never pass: it waits for a full bucket instead.
            needed = min(estimate, limits.tokens_per_minute)
            if (wait := bucket.wait(needed)) > 0:
                raise RateLimited("tokens_per_minute", limits.tokens_per_minute, bucket.level, wait)
            bucket.level -= estimate
        state.active += 1
        return Lease(self, tenant, estimate)

    def _end(self, lease: Lease, used_tokens: int | None) -> None:
        state = self._state(lease.tenant)
        state.active -= 1
        if state.tokens is not None and used_tokens is not None:
            state.tokens.refill(self._clock())
            state.tokens.level -= used_tokens - lease.estimate

    def _state(self, tenant: Tenant) -> _State:
        # One entry per configured tenant (and anonymous): callers cannot add any.
        state = self._states.get(tenant.name)
        if state is None:
            state = self._states[tenant.name] = _State()
        return state


def may_use(tenant: Tenant | None, model_names: Iterable[str]) -> bool:
    """Whether ``tenant`` may see and use a model known by ``model_names`` (its Ollama name, its mistral.rs id)."""
    if tenant is None or tenant.limits.models is None:
        return True
    allowed = {normalize(name) for name in tenant.limits.models}
    return any(normalize(name) in allowed for name in model_names)


def _fitted(bucket: _Bucket | None, per_minute: int, now: float) -> _Bucket:
    """The bucket, refilled to now; a new one (full) when there was none, or when the limit changed on reload."""
    if bucket is None or bucket.per_minute != per_minute:
        return _Bucket(per_minute, float(per_minute), now)
    bucket.refill(now)
    return bucket


def estimate_tokens(body: dict[str, Any]) -> int:
    """A request's input tokens, before any tokenizer has seen it: its text, four characters a token."""
    characters = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            characters += len(content)
        elif isinstance(content, list):
            characters += sum(len(part.get("text") or "") for part in content if isinstance(part, dict))
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            characters += len(value)
        elif isinstance(value, list):
            characters += sum(len(item) for item in value if isinstance(item, str))
    return math.ceil(characters / 4)
