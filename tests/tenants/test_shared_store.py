"""Two replicas behind HAProxy, sharing their tenants' limits through a Redis server (Debian's, as a user runs it):
the limit holds across both; when the store goes away each replica keeps its own limits, says so in the log and in
mistral_quota_store_up, and nothing fails."""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from app.main import create_app
from app.settings import Settings
from otel.setup import configure
from scripts.stack import HAPROXY_CONFIG, free_port
from tests.otel.helpers import values
from tests.servers import Server, serve_in_thread
from tests.waiting import eventually

KEYS = """
tenants:
  - name: team-shared
    keys: [key-shared]
    limits: {requests_per_minute: 10}
  - name: team-alone
    keys: [key-alone]
    limits: {requests_per_minute: 5}
"""


@pytest.fixture
def store() -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("!!! NOT RUN: the shared quota store: no redis-server (apt-get install redis-server)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    client = redis.Redis.from_url(process.url)  # type: ignore[attr-defined]
    eventually(lambda: _pings(client), within=10.0, every=0.05)
    client.close()
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@dataclasses.dataclass
class Replicas:
    url: str
    servers: list[Server]
    readers: list[InMemoryMetricReader]


@pytest.fixture
def replicas(settings: Settings, store: subprocess.Popen[bytes], tmp_path: Path) -> Iterator[Replicas]:
    (tmp_path / "keys.yaml").write_text(KEYS)
    shared = dataclasses.replace(settings, api_keys_file=str(tmp_path / "keys.yaml"),
                                 quota_store_url=store.url)  # type: ignore[attr-defined]  # fmt: skip
    with ExitStack() as stack:
        servers, readers = [], []
        for _ in range(2):
            reader = InMemoryMetricReader()
            telemetry = configure("test", environ={}, metric_readers=[reader])
            stack.callback(telemetry.shutdown)
            servers.append(stack.enter_context(serve_in_thread(create_app(shared, telemetry=telemetry))))
            readers.append(reader)
        url = _balancer(stack, tmp_path, [server.port for server in servers])
        yield Replicas(url, servers, readers)


def _balancer(stack: ExitStack, workdir: Path, ports: list[int]) -> str:
    """HAProxy with the repository's configuration, its replicas being ``ports``."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    lines = HAPROXY_CONFIG.read_text().replace("bind :11434", f"bind 127.0.0.1:{port}").splitlines()
    servers = [n for n, line in enumerate(lines) if line.strip().startswith("server proxy-")]
    listed = [f"  server proxy-{n} 127.0.0.1:{replica}" for n, replica in enumerate(ports)]
    (workdir / "haproxy.cfg").write_text("\n".join(lines[: servers[0]] + listed + lines[servers[-1] + 1 :]) + "\n")
    process = subprocess.Popen([haproxy, "-db", "-f", str(workdir / "haproxy.cfg")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    stack.callback(lambda: (process.terminate(), process.wait(10)))
    url = f"http://127.0.0.1:{port}"
    eventually(lambda: _answers(url), within=20.0, every=0.1)
    return url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _statuses(url: str, key: str, count: int) -> tuple[list[int], float]:
    """The statuses of ``count`` requests, and the seconds they took (for what the buckets refilled meanwhile)."""
    started = time.monotonic()
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=10) as http:
        statuses = [http.get("/api/tags").status_code for _ in range(count)]
    return statuses, time.monotonic() - started


def _served(replicas: Replicas, tenant: str) -> list[float]:
    return [sum(v for (t, _, _), v in values(reader, "mistral_tenant_requests", "tenant", "endpoint", "status").items()
                if t == tenant) for reader in replicas.readers]  # fmt: skip


def _all_served(replicas: Replicas, tenant: str, count: int) -> list[float] | None:
    served = _served(replicas, tenant)
    return served if sum(served) >= count else None


def test_two_replicas_hold_a_tenant_to_its_limit_together(replicas: Replicas) -> None:
    statuses, seconds = _statuses(replicas.url, "key-shared", 30)
    assert set(statuses) <= {200, 429}
    # Ten a minute, refilled continuously: the ten there were, and one more for every six seconds the run took.
    assert 10 <= statuses.count(200) <= 10 + math.ceil(seconds / 6), (statuses, seconds)
    # A replica counts a request once its answer has gone, which its client may have read first.
    served = eventually(lambda: _all_served(replicas, "team-shared", 30), within=10.0)
    assert all(count > 0 for count in served) and sum(served) == 30, served  # both replicas answered
    assert [values(reader, "mistral_quota_store_up") for reader in replicas.readers] == [{(): 1}, {(): 1}]


def test_without_its_store_each_replica_keeps_its_own_limits_and_says_so(
    replicas: Replicas, store: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.tenants.quotas")
    store.terminate()
    store.wait(10)
    statuses, seconds = _statuses(replicas.url, "key-alone", 30)
    assert set(statuses) <= {200, 429}, statuses  # never an outage
    # Five a minute on each replica that answered (more than one replica's five), one more each per 12 s taken.
    assert 5 < statuses.count(200) <= 2 * (5 + math.ceil(seconds / 12)), (statuses, seconds)
    assert "does not answer" in caplog.text and "each replica keeps its own limits" in caplog.text
    assert {(): 0} in [values(reader, "mistral_quota_store_up") for reader in replicas.readers]
