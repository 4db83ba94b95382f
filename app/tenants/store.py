"""The quota counters shared by the proxy's replicas: a Redis or Valkey server (``QUOTA_STORE_URL``).

Each bucket is one hash, refilled and taken from in one Lua script on the store's own clock, so that replicas
with drifting clocks agree; generations at once are a sorted set of leases, each with an expiry, so that a
replica that dies does not hold its tenants' slots for ever. Every call has a short timeout: a store that does not
answer is a ``StoreUnavailable``, which the quotas turn into per-replica limits, never into an outage.
"""

from __future__ import annotations

import secrets

import redis.asyncio as redis
from redis.exceptions import RedisError

__all__ = ["SharedStore", "StoreUnavailable"]

_PREFIX = "mistral-ollama-proxy:quota:"
# KEYS[1] the bucket; ARGV: its allowance per minute, the amount that must be there, the amount to take (may
# differ: an estimate larger than the allowance only waits for a full bucket; a negative amount gives back).
# Returns the level after, and the seconds to wait (0 when taken), as strings (Lua numbers lose their fractions).
_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local allowance, needed, taken = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'level', 'stamp', 'allowance')
local level, stamp = tonumber(state[1]), tonumber(state[2])
if level == nil or tonumber(state[3]) ~= allowance then level, stamp = allowance, now end
level = math.min(allowance, level + (now - stamp) * allowance / 60)
local wait = 0
if needed > 0 and level < needed then
  wait = (needed - level) * 60 / allowance
else
  level = level - taken
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', tostring(now), 'allowance', allowance)
redis.call('EXPIRE', KEYS[1], 600)
return {tostring(level), tostring(wait)}
"""
# KEYS[1] the tenant's leases; ARGV: its limit, a new lease's id, how long a lease may live. 1 when it got a slot.
_ENTER = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 60)
return 1
"""


class StoreUnavailable(Exception):
    pass


class SharedStore:
    def __init__(self, url: str, timeout: float = 1.0, lease_seconds: float = 600.0) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._take = self._redis.register_script(_TAKE)
        self._enter = self._redis.register_script(_ENTER)
        self._lease_seconds = lease_seconds

    async def take(self, bucket: str, allowance: int, needed: float, taken: float) -> tuple[float, float]:
        """The level after, and the seconds to wait before ``needed`` is there (0: ``taken`` was taken)."""
        try:
            level, wait = await self._take(keys=[_PREFIX + bucket], args=[allowance, needed, taken])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None
        return float(level), float(wait)

    async def enter(self, tenant: str, limit: int) -> str | None:
        """A lease id when ``tenant`` has fewer than ``limit`` generations in flight, else None."""
        lease = secrets.token_hex(8)
        try:
            entered = await self._enter(keys=[_PREFIX + tenant + ":active"], args=[limit, lease, self._lease_seconds])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None
        return lease if entered else None

    async def leave(self, tenant: str, lease: str) -> None:
        try:
            await self._redis.zrem(_PREFIX + tenant + ":active", lease)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from None

    async def aclose(self) -> None:
        await self._redis.aclose()
