"""A client that leaves and a deadline that passes end the work the same way on every path: streamed or whole,
over HTTP (the emulator) or in-process (the tiny model in the real engine). The engine's sequence stops, every
slot comes back, the request is counted once, and the next request is answered as on a fresh proxy.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.applications import Starlette

from app.generation import Generations
from app.main import create_app, make_upstream
from app.settings import Settings
from app.upstream.embedded import EmbeddedUpstream
from otel.telemetry import Telemetry
from tests.emulator import Emulator, Reply
from tests.otel.helpers import values, wait_idle
from tests.servers import Server, serve_in_thread
from tests.tiny_model import build_tiny_model
from tests.waiting import eventually

HI = [{"role": "user", "content": "hi"}]
# tokens: minutes of the tiny model (about 1,800 tokens/s at first on a quiet CPU, slower as its context grows), far
# longer than any test waits; its context is widened to hold them
LONG = 60000
DEADLINE = {"error": "the request exceeded its time limit"}


@dataclass
class Proxy:
    """A proxy on loopback, with what a test needs to see inside it."""

    server: Server
    app: Starlette
    model: str
    idle: Callable[[], bool]  # the upstream does no work for any request

    @property
    def generations(self) -> Generations:
        generations: Generations = self.app.state.services.generations
        return generations


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_tiny_model(tmp_path_factory.mktemp("cancellation") / "tiny")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 2 * LONG}))
    return model


def _producers() -> list[threading.Thread]:
    """The threads reading engine streams: one per sequence the engine is generating."""
    return [thread for thread in threading.enumerate() if thread.name == "mistralrs-stream"]


def _engine_idle(engine: EmbeddedUpstream) -> bool:
    return engine.active_streams == 0 and engine.slots.held == 0 and not _producers()


@pytest.fixture(params=["in-process", "http"])
def start(
    request: pytest.FixtureRequest, tiny_model: Path, emulator: Emulator, upstream: Server, telemetry: Telemetry
) -> Iterator[Callable[..., Proxy]]:
    """Starts a proxy with some settings changed, on either engine; one engine slot, as the GGUF default."""

    def start(**changes: Any) -> Proxy:
        if request.param == "in-process":
            settings = Settings(model=str(tiny_model), engine_concurrency=1, **changes)
            engine = make_upstream(settings, telemetry)
            assert isinstance(engine, EmbeddedUpstream)
            app = create_app(settings, telemetry=telemetry, upstream=engine)
            idle, model = (lambda: _engine_idle(engine)), "tiny"
        else:
            settings = Settings(mistral_url=upstream.url, **changes)
            app = create_app(settings, telemetry=telemetry)
            idle, model = (lambda: emulator.active_streams == 0), "mistral-7b"
        context = serve_in_thread(app)
        running.append(context)
        return Proxy(context.__enter__(), app, model, idle)

    running: list[Any] = []
    yield start
    for context in running:
        context.__exit__(None, None, None)


def _long(proxy: Proxy, emulator: Emulator, *, stream: bool) -> dict[str, Any]:
    """A request that would run for far longer than the test: the emulator is scripted to match the engine."""
    if proxy.model != "tiny":
        words = " ".join(["word"] * 2000)  # streamed at 20 a second, or held back: never all sent
        emulator.script(Reply(content=words, delay=0.05) if stream else Reply(content=words, first_byte_delay=3600))
    return {"model": proxy.model, "messages": HI, "stream": stream, "options": {"num_predict": LONG}}


def _working(proxy: Proxy, emulator: Emulator) -> Callable[[], bool]:
    """Whether the upstream is at work on the request: generating tokens, or holding it."""
    if proxy.model == "tiny":
        return lambda: bool(_producers())
    return lambda: any(seen.path == "/v1/chat/completions" for seen in emulator.requests)


def _send_and_leave(proxy: Proxy, body: dict[str, Any], started: Callable[[], bool]) -> bytes:
    """Send ``body`` on a raw connection, wait until the work has started (a streamed line, or ``started()``),
    then close the connection as a client that gives up does. Returns what arrived."""
    payload = json.dumps(body).encode()
    head = f"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}"
    with socket.create_connection(("127.0.0.1", proxy.server.port), timeout=60) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + payload)
        received = b""
        if body["stream"]:
            while b'"done":false' not in received:  # a first line of the answer
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
        else:
            eventually(started, within=60)
    return received


def _next_answer(proxy: Proxy, emulator: Emulator) -> dict[str, Any]:
    if proxy.model != "tiny":
        emulator.script(Reply(content="a b c"))
    body = {"model": proxy.model, "messages": HI, "stream": False, "options": {"num_predict": 3}}
    response = httpx.post(f"{proxy.server.url}/api/chat", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _the_next_is_answered_and_each_counted_once(
    proxy: Proxy, emulator: Emulator, reader: InMemoryMetricReader, ended: tuple[str, str, str]
) -> None:
    """After a request that ended early (``ended``: how it is counted): the upstream stops working for it, the next
    request is answered in full, each is counted once, and nothing is left in flight."""
    eventually(proxy.idle, within=10)
    if proxy.model != "tiny":
        eventually(lambda: len(emulator.disconnects) == 1, within=10)
    answer = _next_answer(proxy, emulator)
    expected = (True, "length" if proxy.model == "tiny" else "stop", 3)
    assert (answer["done"], answer["done_reason"], answer["eval_count"]) == expected
    assert _counts(reader) == {ended: 1, ("/api/chat", "200", "none"): 1}
    assert values(reader, "mistral_active_requests") == {(): 0}
    eventually(proxy.idle, within=10)  # a producer thread ends a moment after its last hand-over
    assert proxy.generations.limiter.held == 0


def _counts(reader: InMemoryMetricReader) -> dict[tuple[Any, ...], Any]:
    wait_idle(reader)
    return values(reader, "mistral_http_requests", "endpoint", "status", "error_type")


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_client_that_leaves_ends_the_work_and_frees_every_slot(
    start: Callable[..., Proxy], emulator: Emulator, metric_reader: InMemoryMetricReader, stream: bool
) -> None:
    proxy = start()
    _send_and_leave(proxy, _long(proxy, emulator, stream=stream), _working(proxy, emulator))
    # The engine stops at its next token (a blocked read cannot be interrupted), the emulator at its next write.
    eventually(lambda: proxy.generations.limiter.held == 0, within=10)
    gone = ("/api/chat", "200", "client_disconnected") if stream else ("/api/chat", "499", "client_disconnected")
    _the_next_is_answered_and_each_counted_once(proxy, emulator, metric_reader, gone)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_deadline_ends_the_work_with_its_error_and_frees_every_slot(
    start: Callable[..., Proxy], emulator: Emulator, metric_reader: InMemoryMetricReader, stream: bool
) -> None:
    proxy = start(request_timeout=5.0)  # the next request, 3 tokens, must fit in it on a loaded machine
    response = httpx.post(f"{proxy.server.url}/api/chat", json=_long(proxy, emulator, stream=stream), timeout=60)
    if stream:
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert response.status_code == 200 and lines[-1] == DEADLINE
        assert all(line["done"] is False for line in lines[:-1])
    else:
        assert (response.status_code, response.json()) == (504, DEADLINE)
    timed_out = ("/api/chat", "200" if stream else "504", "upstream_timeout")
    _the_next_is_answered_and_each_counted_once(proxy, emulator, metric_reader, timed_out)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_shutdown_past_its_grace_period_ends_the_work_in_flight(
    start: Callable[..., Proxy], emulator: Emulator, metric_reader: InMemoryMetricReader, stream: bool
) -> None:
    proxy = start()
    body, lines, started = _long(proxy, emulator, stream=stream), [], threading.Event()

    def send() -> None:
        with httpx.stream("POST", f"{proxy.server.url}/api/chat", json=body, timeout=60) as response:
            lines.append(response.status_code)
            for line in response.iter_lines():
                lines.append(json.loads(line))
                started.set()

    client = threading.Thread(target=send)
    client.start()
    if stream:  # a stream is in the drain's care once its first line is out
        assert started.wait(60)
    else:
        eventually(_working(proxy, emulator), within=60)
    # What the serve command does on SIGTERM: the drain waits out its grace period, then ends what is left.
    drain = proxy.app.state.drain.shutdown(0.2)
    asyncio.run_coroutine_threadsafe(drain, proxy.server.loop).result(30)
    client.join(60)
    shutting_down = {"error": "the server is shutting down"}
    if stream:
        assert lines[0] == 200 and lines[-1] == shutting_down and len(lines) >= 3
        assert all(line["done"] is False for line in lines[1:-1])
    else:
        assert lines == [503, shutting_down]
    eventually(proxy.idle, within=10)
    assert proxy.generations.limiter.held == 0
    ended = ("/api/chat", "200" if stream else "503", "shutting_down")
    assert _counts(metric_reader) == {ended: 1}
    assert values(metric_reader, "mistral_active_requests") == {(): 0}


def _agent_body(route: str, proxy: Proxy) -> dict[str, Any]:
    if route == "/v1/messages":
        return {"model": proxy.model, "max_tokens": LONG, "messages": HI, "stream": True}
    return {"model": proxy.model, "max_output_tokens": LONG, "input": "hi", "stream": True}


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/responses"])
def test_a_client_that_leaves_an_agent_route_ends_the_work_and_frees_every_slot(
    start: Callable[..., Proxy], emulator: Emulator, metric_reader: InMemoryMetricReader, route: str
) -> None:
    # Claude Code and Codex stop streams as users interrupt them: the same end as a chat's, on both engines.
    proxy = start()
    _long(proxy, emulator, stream=True)
    payload = json.dumps(_agent_body(route, proxy)).encode()
    head = f"POST {route} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}"
    with socket.create_connection(("127.0.0.1", proxy.server.port), timeout=60) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + payload)
        received = b""
        while b"delta" not in received:  # a first token: content_block_delta, or response.output_text.delta
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    eventually(lambda: proxy.generations.limiter.held == 0, within=10)
    _the_next_is_answered_and_each_counted_once(proxy, emulator, metric_reader, (route, "200", "client_disconnected"))
