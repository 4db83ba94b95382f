"""A bounded mixed run with injected faults: every counter equals what was sent, and nothing leaks."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel.setup import configure
from otel.telemetry import Telemetry
from tests.emulator import Emulator, Reply
from tests.otel.helpers import values, wait_idle
from tests.servers import Server

REQUESTS = 2000
HI = [{"role": "user", "content": "hi"}]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _plan(seed: int) -> tuple[list[dict[str, Any]], list[Reply]]:
    """The requests (one in ten for an unknown model) and the replies mistral.rs will give (one in ten broken)."""
    rng = random.Random(seed)
    bodies: list[dict[str, Any]] = []
    replies: list[Reply] = []
    for n in range(REQUESTS):
        if n % 10 == 9:
            bodies.append({"model": "nope", "messages": HI})
            continue
        bodies.append({"model": "mistral", "messages": HI, "stream": rng.random() < 0.5})
        replies.append(Reply(content="a b c", error_after=1) if n % 10 == 4 else Reply())
    return bodies, replies


@pytest.fixture
def telemetry(metric_reader: InMemoryMetricReader) -> Iterator[Telemetry]:
    """Traces are made but not kept: an in-memory exporter would hold every span and hide a real leak."""
    telemetry = configure("test", environ={}, metric_readers=[metric_reader])
    yield telemetry
    telemetry.shutdown()


def test_soak(proxy: Server, emulator: Emulator, upstream: Server, metric_reader: InMemoryMetricReader) -> None:
    bodies, replies = _plan(seed=7)
    emulator.script(*replies)
    with httpx.Client(base_url=proxy.url, timeout=30, limits=httpx.Limits(max_connections=8)) as http:
        http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False})  # warm up
        emulator.script(Reply())
        before = _rss_bytes()

        def send(body: dict[str, Any]) -> int:
            return http.post("/api/chat", json=body).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = Counter(pool.map(send, bodies))
    wait_idle(metric_reader)
    growth = _rss_bytes() - before
    broken = REQUESTS // 10
    # Broken streams answer 200 with an error line; broken non-streamed answers 502.
    assert statuses[404] == REQUESTS // 10 and statuses[200] + statuses[502] == REQUESTS - REQUESTS // 10
    counted = values(metric_reader, "mistral_http_requests", "endpoint", "status", "error_type")
    by_type = Counter()
    for (_, _, error_type), count in counted.items():
        by_type[error_type] += count
    # A broken reply fails a stream mid-way (upstream_error) or a collected answer (upstream_status, a 500).
    mid_stream = by_type.pop("upstream_error", 0)
    assert mid_stream + by_type.pop("upstream_status", 0) == broken
    assert by_type == {"none": REQUESTS - 2 * broken + 1, "model_not_found": broken}
    assert values(metric_reader, "mistral_active_requests") == {(): 0}
    good = REQUESTS - 2 * broken + 1
    tokens = values(metric_reader, "mistral_generate_tokens", "model", "upstream")
    assert tokens == {("mistral-7b", upstream.url): 4 * good + mid_stream}
    assert emulator.active_streams == 0
    leftover = _poll_tasks(proxy)
    assert leftover == [], leftover  # no request, stream or connection left behind
    # The proxy, the emulator (which keeps every request) and this client share the process.
    assert growth < 32 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB over {REQUESTS} requests"


# Tasks that live as long as the server, not a request.
_SERVER_TASKS = ("Lifespan.handle_lifespan", "raise_shutdown", "serve_in_thread.<locals>.run", "watch_upstream",
                 "watch_event_loop", "worker_serve")  # fmt: skip


async def _other_tasks() -> list[str]:
    current = asyncio.current_task()
    names = [task.get_coro().__qualname__ for task in asyncio.all_tasks() if task is not current]  # type: ignore[union-attr]
    return sorted(name for name in names if not name.startswith(_SERVER_TASKS))


def _poll_tasks(proxy: Server) -> list[str]:
    """The closed client's connections take a moment to be noticed: wait for them to go."""
    for _ in range(100):
        leftover = asyncio.run_coroutine_threadsafe(_other_tasks(), proxy.loop).result(5)
        if not leftover:
            break
        time.sleep(0.05)
    return leftover
