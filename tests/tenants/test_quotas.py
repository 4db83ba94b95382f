"""Each tenant's limits, on a clock the test moves: a tenant under its limit always passes, one over it is told
exactly when to come back, and tokens used are charged once the generation ends."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from app.errors import RateLimited
from app.tenants import Limits, Quotas, Tenant, estimate_tokens, may_use
from tests.clock import ManualClock

T = TypeVar("T")


def run(call: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(call)


def test_requests_per_minute_refill_continuously() -> None:
    clock, team = ManualClock(), Tenant("team-a", Limits(requests_per_minute=60))
    quotas = Quotas(clock)
    for _ in range(60):
        run(quotas.admit(team))
    with pytest.raises(RateLimited) as refused:
        run(quotas.admit(team))
    assert (refused.value.limit, refused.value.allowance, refused.value.wait) == ("requests_per_minute", 60, 1.0)
    assert refused.value.headers == {"Retry-After": "1"}
    clock.now += 1.0  # one request's worth refilled
    run(quotas.admit(team))
    with pytest.raises(RateLimited):
        run(quotas.admit(team))


def test_tenants_do_not_share_their_limits() -> None:
    quotas = Quotas(ManualClock())
    team_a, team_b = Tenant("team-a", Limits(requests_per_minute=1)), Tenant("team-b", Limits(requests_per_minute=1))
    run(quotas.admit(team_a))
    with pytest.raises(RateLimited):
        run(quotas.admit(team_a))
    run(quotas.admit(team_b))
    run(quotas.admit(Tenant("team-c")))  # no limits: never refused
    run(quotas.admit(Tenant("team-c")))


def test_generations_at_once_are_counted_until_they_end() -> None:
    quotas, team = Quotas(ManualClock()), Tenant("team-a", Limits(concurrent=2))
    first, second = run(quotas.begin(team, 1)), run(quotas.begin(team, 1))
    with pytest.raises(RateLimited) as refused:
        run(quotas.begin(team, 1))
    assert refused.value.limit == "concurrent"
    run(first.end(10))
    run(first.end(10))  # ending twice gives back one slot only
    third = run(quotas.begin(team, 1))
    with pytest.raises(RateLimited):
        run(quotas.begin(team, 1))
    run(second.end(None))
    run(third.end(None))


def test_tokens_are_estimated_up_front_and_charged_when_known() -> None:
    clock, team = ManualClock(), Tenant("team-a", Limits(tokens_per_minute=1200))
    quotas = Quotas(clock)
    lease = run(quotas.begin(team, 200))  # 1000 left
    run(lease.end(1100))  # it used 1100: 900 more than estimated, so 100 left
    with pytest.raises(RateLimited) as refused:
        run(quotas.begin(team, 200))
    # 100 tokens missing at 20 a second: 5 s
    assert (refused.value.limit, refused.value.remaining, refused.value.wait) == ("tokens_per_minute", 100.0, 5.0)
    assert refused.value.headers == {"Retry-After": "5"}
    clock.now += 5
    run(run(quotas.begin(team, 200)).end(0))


def test_an_estimate_above_the_allowance_waits_for_a_full_bucket_rather_than_forever() -> None:
    clock, team = ManualClock(), Tenant("team-a", Limits(tokens_per_minute=100))
    quotas = Quotas(clock)
    run(run(quotas.begin(team, 500)).end(500))  # a full bucket lets it through, and it overdraws
    with pytest.raises(RateLimited) as refused:
        run(quotas.begin(team, 500))
    assert refused.value.wait == pytest.approx(300.0)  # from -400 back to a full 100


def test_only_the_allowed_models_exist_for_a_tenant() -> None:
    team = Tenant("team-a", Limits(models=frozenset({"smollm2:135m", "qwen3"})))
    assert may_use(team, ["SmolLM2:135m", "default"]) and may_use(team, ["qwen3:latest", "Qwen/Qwen3-4B"])
    assert not may_use(team, ["mistral-7b:latest", "mistral-7b"])
    assert may_use(Tenant("team-b"), ["mistral-7b"]) and may_use(None, ["mistral-7b"])  # no list, no keys: all


def test_a_changed_limit_starts_a_full_bucket() -> None:
    quotas = Quotas(ManualClock())
    run(quotas.admit(Tenant("team-a", Limits(requests_per_minute=1))))
    run(quotas.admit(Tenant("team-a", Limits(requests_per_minute=2))))  # the file was reloaded with a higher limit


def test_the_estimate_counts_text_only() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 40}, {"role": "user", "content": [
        {"type": "text", "text": "y" * 8}, {"type": "image_url", "image_url": {"url": "data:" + "z" * 10_000}}]}],
        "prompt": "abcd", "input": ["ab", "cd", 7]}  # fmt: skip
    assert estimate_tokens(body) == 14  # (40 + 8 + 4 + 4) / 4
