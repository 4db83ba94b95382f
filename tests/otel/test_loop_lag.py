"""mistral_event_loop_lag_seconds: how long the event loop was held, as every other request felt it."""

from __future__ import annotations

import asyncio
import time

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel.loop_lag import INTERVAL, watch_event_loop
from otel.semconv import Buckets, Metric
from tests.otel.helpers import points
from tests.servers import Server
from tests.waiting import eventually

HELD = 0.5


def test_a_held_loop_is_recorded_at_least_as_late_as_it_was_held() -> None:
    async def session() -> list[float]:
        lags: list[float] = []
        watcher = asyncio.create_task(watch_event_loop(lags.append, interval=0.05))
        await asyncio.sleep(0.2)
        time.sleep(HELD)  # what a slow parse does to the loop
        await asyncio.sleep(0.2)
        watcher.cancel()
        return lags

    lags = asyncio.run(session())
    # The timer fell due at most one interval into the hold, and ran only after it.
    assert max(lags) >= HELD - 0.05


def test_the_proxy_records_its_loop_from_the_start(proxy: Server, metric_reader: InMemoryMetricReader) -> None:
    assert INTERVAL == 0.25
    eventually(lambda: sum(point.count for point in points(metric_reader, Metric.EVENT_LOOP_LAG).values()) >= 2,
               within=30.0)  # fmt: skip
    (point,) = points(metric_reader, Metric.EVENT_LOOP_LAG).values()  # one series, no labels
    assert tuple(point.explicit_bounds) == Buckets.EVENT_LOOP_LAG
