"""Two proxy replicas behind the real HAProxy (the repository's config), pushing OTLP to the real Collector, which
the real Prometheus scrapes: sums over replicas are exact, each replica's share is its own series, and a replica
killed mid-run costs only the requests it had in flight."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.stack import Ports, Stack
from tests.emulator import Emulator, Reply
from tests.load import run_clients
from tests.monitoring.test_pipeline import FAST, OTLP_JOB
from tests.programs import programs
from tests.servers import Server
from tests.waiting import eventually

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def stack(upstream: Server, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, programs(), Ports.free(), upstream.url, dict(FAST), scrape_interval="1s", replicas=2)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _send(url: str, count: int, started: threading.Event | None = None) -> list[str]:
    """``count`` non-streamed chats through ``url`` from 8 clients; the failures, as text. ``started`` is set once a
    quarter of them are done."""

    def chat(http: httpx.Client) -> str | None:
        response = http.post("/api/chat", json={"model": "mistral-7b", "messages": HI, "stream": False})
        return None if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"

    def after(done: int) -> None:
        if started is not None and done == count // 4:
            started.set()

    return run_clients(url, count, 8, chat, after)


def _query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{stack.url('prometheus')}/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _by_instance(stack: Stack, expr: str) -> dict[str, float]:
    return {series["metric"]["instance"]: float(series["value"][1]) for series in _query(stack, expr)}


def test_a_thousand_requests_through_the_balancer_sum_to_a_thousand_in_prometheus(stack: Stack) -> None:
    assert _send(stack.url("proxy"), 1000) == []
    chats = f'mistral_http_requests_total{{job="{OTLP_JOB}", endpoint="/api/chat"}}'

    def total() -> float:
        found = _query(stack, f"sum({chats})")
        return float(found[0]["value"][1]) if found else 0.0

    eventually(lambda: total() == 1000, within=30.0, every=0.5)
    shares = _by_instance(stack, f"sum by (instance) ({chats})")
    replicas = _by_instance(stack, f'target_info{{job="{OTLP_JOB}"}}')
    assert set(shares) == set(replicas) and len(shares) == 2  # each replica is its own service.instance.id
    assert sum(shares.values()) == 1000 and all(share >= 300 for share in shares.values()), shares
    statuses = _query(stack, f"sum by (status) ({chats})")
    assert {series["metric"]["status"]: float(series["value"][1]) for series in statuses} == {"200": 1000}


def test_a_replica_killed_mid_run_loses_only_its_requests_in_flight(stack: Stack, emulator: Emulator) -> None:
    emulator.script(*[Reply(content="a b c d e", delay=0.004)] * 1000)  # 20 ms per answer: requests are in flight
    started = threading.Event()
    failures: list[str] = []
    load = threading.Thread(target=lambda: failures.extend(_send(stack.url("proxy"), 800, started=started)))
    load.start()
    assert started.wait(60)
    victim = stack.programs["proxy-1"].process
    assert victim is not None
    victim.send_signal(signal.SIGKILL)
    load.join()
    # At most one request per client was on the killed replica when it died (HAProxy then drops the client's
    # connection, or answers 502); every later one went to the other replica.
    assert 0 < len(failures) <= 8, failures
    gone = ("RemoteProtocolError(", "502 ")  # the connection dropped (before or during the answer), or 502
    assert all(failure.startswith(gone) for failure in failures), failures
    assert _send(stack.url("proxy"), 100) == []
