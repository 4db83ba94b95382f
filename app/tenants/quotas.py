"""Each tenant's limits, enforced before mistral.rs is called: requests and tokens per minute, generations at once,
and the models it may use (``may_use``, which the catalog asks). Per process, or shared by the replicas through a
store (app/tenants/store.py) when there is one.

Requests and tokens per minute are token buckets (a minute's allowance, refilled continuously), so a tenant
under its limit is never refused and one over it learns exactly when to come back. A generation takes its
estimated input tokens up front (the text of the request, four characters a token); when it ends, the tokens it
really used are charged, so the bucket may go below zero and the next request waits for it to refill.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from app.errors import RateLimited
from app.models.names import normalize
from app.tenants.directory import Tenant
from app.tenants.store import SharedStore, StoreUnavailable

__all__ = ["Lease", "Quotas", "current_tenant", "estimate_tokens", "may_use", "reset_serving", "serving"]

_log = logging.getLogger(__name__)
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
    """One generation's hold on its tenant's quota; ``end`` gives it back and charges what it used, where it was
    taken (the shared store, or this process)."""

    quotas: Quotas
    tenant: Tenant
    estimate: int
    shared_slot: str | None = None  # the store's lease id
    local_slot: bool = False
    tokens: str | None = None  # "shared" or "local": where the estimate was taken
    ended: bool = field(default=False)

    async def end(self, used_tokens: int | None) -> None:
        if not self.ended:
            await self.quotas._end(self, used_tokens)


class Quotas:
    """The limits of every tenant; with a ``store``, shared by the replicas that use it, else (and while the store
    does not answer, retried every ``retry`` seconds) this process's own."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, store: SharedStore | None = None, retry: float = 5.0
    ) -> None:
        self._clock, self._store, self._retry = clock, store, retry
        self._states: dict[str, _State] = {}
        self._down_until = float("-inf")
        self.store_up: bool | None = None if store is None else True  # mistral_quota_store_up

    async def admit(self, tenant: Tenant) -> None:
        """A request of ``tenant``'s: RateLimited past its requests per minute."""
        limit = tenant.limits.requests_per_minute
        if limit is None:
            return
        shared = await self._take(f"{tenant.name}:requests", limit, 1, 1)
        if shared is not None:
            level, wait = shared
        else:
            state = self._state(tenant)
            bucket = state.requests = _fitted(state.requests, limit, self._clock())
            level, wait = bucket.level, bucket.wait(1)
            if wait == 0:
                bucket.level -= 1
        if wait > 0:
            raise RateLimited("requests_per_minute", limit, level, wait)

    async def begin(self, tenant: Tenant, estimate: int) -> Lease:
        """A generation of ``tenant``'s: RateLimited past its generations at once or its tokens per minute. (Its
        models are the catalog's to hide: ``may_use``.)"""
        limits, lease = tenant.limits, Lease(self, tenant, estimate)
        if limits.concurrent is not None:
            await self._enter(lease, limits.concurrent)
        try:
            if limits.tokens_per_minute is not None:
                await self._take_estimate(lease, limits.tokens_per_minute)
        except BaseException:
            await self._end(lease, None)
            raise
        return lease

    async def _enter(self, lease: Lease, limit: int) -> None:
        if (store := self._shared()) is not None:
            try:
                slot = await store.enter(lease.tenant.name, limit)
            except StoreUnavailable as exc:
                self._failed(exc)
            else:
                self._answered()
                if slot is None:
                    raise RateLimited("concurrent", limit, 0, 1.0)
                lease.shared_slot = slot
                return
        state = self._state(lease.tenant)
        if state.active >= limit:
            raise RateLimited("concurrent", limit, 0, 1.0)
        state.active += 1
        lease.local_slot = True

    async def _take_estimate(self, lease: Lease, limit: int) -> None:
        # An estimate above the whole allowance could never pass: it waits for a full bucket instead.
        needed = min(lease.estimate, limit)
        shared = await self._take(f"{lease.tenant.name}:tokens", limit, needed, lease.estimate)
        if shared is not None:
            level, wait = shared
            lease.tokens = "shared"
        else:
            state = self._state(lease.tenant)
            bucket = state.tokens = _fitted(state.tokens, limit, self._clock())
            level, wait = bucket.level, bucket.wait(needed)
            if wait == 0:
                bucket.level -= lease.estimate
                lease.tokens = "local"
        if wait > 0:
            raise RateLimited("tokens_per_minute", limit, level, wait)

    async def _end(self, lease: Lease, used_tokens: int | None) -> None:
        lease.ended = True
        if lease.local_slot:
            self._state(lease.tenant).active -= 1
        if lease.shared_slot is not None and self._store is not None:
            try:
                await self._store.leave(lease.tenant.name, lease.shared_slot)
            except StoreUnavailable as exc:  # the lease expires in the store on its own
                self._failed(exc)
        limit = lease.tenant.limits.tokens_per_minute
        if limit is None or used_tokens is None or lease.tokens is None:
            return
        extra = used_tokens - lease.estimate
        if lease.tokens == "shared" and await self._take(f"{lease.tenant.name}:tokens", limit, 0, extra) is not None:
            return
        state = self._state(lease.tenant)
        if state.tokens is not None:
            state.tokens.refill(self._clock())
            state.tokens.level -= extra

    async def _take(self, bucket: str, allowance: int, needed: float, taken: float) -> tuple[float, float] | None:
        """The shared bucket's answer, or None when there is no store or it does not answer."""
        if (store := self._shared()) is None:
            return None
        try:
            answer = await store.take(bucket, allowance, needed, taken)
        except StoreUnavailable as exc:
            self._failed(exc)
            return None
        self._answered()
        return answer

    def _shared(self) -> SharedStore | None:
        return self._store if self._store is not None and self._clock() >= self._down_until else None

    def _failed(self, exc: StoreUnavailable) -> None:
        if self.store_up is not False:
            _log.warning("quota store %s does not answer (%s): each replica keeps its own limits until it does",
                         self._store.url if self._store else "", exc)  # fmt: skip
        self.store_up = False
        self._down_until = self._clock() + self._retry

    def _answered(self) -> None:
        if self.store_up is False:
            _log.warning("quota store %s answers again: the limits are shared", self._store.url if self._store else "")
        self.store_up = True

    def _state(self, tenant: Tenant) -> _State:
        # One entry per configured tenant (and anonymous): callers cannot add any.
        state = self._states.get(tenant.name)
        if state is None:
            state = self._states[tenant.name] = _State()
        return state

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()


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
