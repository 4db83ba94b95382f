"""A session soak (issue 21): simulated Open WebUI users (tests/sessions.py) on the proxy, on either engine, from a
seeded plan: chats with their whole history beside the title, tags and follow-up requests, some given up by their
clients at random points (queued, before the first byte, mid-stream, while a whole answer is generated), some met
by their deadline (the second proxy on the same server and engine, whose REQUEST_TIMEOUT_SECS is short).

A request that is given up or meets its deadline never ends by itself: on the emulator its reply is endless, on the
tiny model it carries no ``num_predict`` (the model never stops; its context is made longer than any run) or the
title's 1000 tokens, more than it makes before its client leaves or its deadline passes. So every answer proves that
the requests ahead of it let go of the engine; a slot kept would hang the clients behind it, which their own bound
reports. No wait here may end by a timer (the queue's and the first byte's are longer than the test): one that did
would be a hang, and would show as a ``queue_timeout`` or an ``upstream_timeout`` the plan did not ask for.
"""

from __future__ import annotations

import itertools
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.main import create_app, make_upstream
from app.settings import Settings
from app.upstream import Upstream
from app.upstream.embedded import EmbeddedUpstream
from otel.telemetry import Telemetry
from tests.emulator import Emulator, Reply
from tests.otel.helpers import values, wait_idle
from tests.servers import Server, serve_in_thread
from tests.sessions import FATES, Call, Mix, Pair, Shape, Users, mark, sentence
from tests.tiny_model import build_tiny_model
from tests.waiting import eventually

SEED = 21
NEVER = 900.0  # the queue's and the first byte's time limits: longer than the test, so no timer ends a wait
SHORT_DEADLINE = 0.2  # the second proxy's REQUEST_TIMEOUT_SECS
DEADLINE = {"error": "the request exceeded its time limit"}
GONE = "client_disconnected"
# Everything the plan allows; Ollama's 503 is not among them: the queues (512 in the proxy, 64 in the engine) hold
# every request a run makes, and no wait runs out.
OUTCOMES = {("200", "none"), ("200", "upstream_timeout"), ("504", "upstream_timeout"), ("200", GONE), ("499", GONE)}


@dataclass
class Target:
    """What the soak runs on: the two proxies, and how to read their engine."""

    pair: Pair
    idle: Callable[[], bool]  # the engine works for no request
    reached: Callable[[], Counter[str]]  # sequences (or mistral.rs requests) started, by trace id


def _emulated(replies: dict[int, Reply]) -> Shape:
    """On the emulator: an answer of its own length (cut to num_predict, which half the answered chats send), and an
    endless reply for every other fate."""

    def shape(rng: random.Random, call: Call) -> None:
        if call.fate != "answer":
            endless = Reply(content=sentence(rng, 1500), delay=0.05)  # about 75 s
            replies[call.number] = endless if call.stream else Reply(first_byte_delay=3600)
            return
        words = rng.randint(4, 16) if call.kind == "chat" else rng.randint(3, 40)
        if call.kind == "chat" and rng.random() < 0.5:
            call.body["options"] = {"num_predict": rng.randint(4, 16), "temperature": 0.7}
        call.tokens = min(words, call.body.get("options", {}).get("num_predict", words))
        replies[call.number] = Reply(content=sentence(rng, words), delay=0.002)

    return shape


def _tiny_shape(rng: random.Random, call: Call) -> None:
    """On the tiny model: an answered chat asks for its length (the model never stops); nothing else does."""
    if call.fate == "answer":
        assert call.kind == "chat"
        call.tokens = rng.randint(4, 16)
        call.body["options"] = {"num_predict": call.tokens, "temperature": 0.7}


def _counted(call: Call) -> tuple[str, str] | None:
    """What ``mistral_http_requests_total`` must count a call as; None: a stream given up before any byte arrived,
    which the proxy counts as 200 (its headers were on their way) or 499."""
    if call.fate == "answer":
        return "200", "none"
    if call.fate == "deadline":
        return str(call.status), "upstream_timeout"
    if call.status is None:
        return None if call.stream else ("499", GONE)  # a whole answer: nothing is sent before its end
    return str(call.status), GONE


def _problem(call: Call) -> str | None:
    """What is wrong with what the client saw, for its fate; None: nothing."""
    if call.error is not None:
        return call.error
    replies, streamed_lines = call.replies, all(reply.get("done") is False for reply in call.replies[:-1])
    if call.fate == "answer":
        last = replies[-1] if replies else {}
        ok = call.status == 200 and streamed_lines and last.get("done") is True
        return None if ok and last.get("eval_count") == call.tokens else f"{call.status} {replies[-2:]}"
    if call.fate == "deadline":
        in_band = call.stream and call.status == 200 and streamed_lines and replies[-1:] == [DEADLINE]
        return None if in_band or (call.status, replies) == (504, [DEADLINE]) else f"{call.status} {replies[-2:]}"
    if call.fate == "leave_mid":
        ok = call.status == 200 and len(replies) == call.lines and all(not reply["done"] for reply in replies)
        return None if ok else f"{call.status} {replies[-2:]}"
    # "leave": nothing arrived before it hung up, or (a stream) only its status line
    hung_up = call.status is None or (call.stream and call.status == 200)
    return None if hung_up and not replies else f"{call.status} {replies[-2:]}"


def _check(target: Target, calls: list[Call], reader: InMemoryMetricReader) -> None:
    problems = [f"#{call.number} {call.kind} {call.fate}: {problem}" for call in calls if (problem := _problem(call))]
    assert problems == [], problems
    assert {call.fate for call in calls} == set(FATES)
    # Hang detector: what the clients gave up or met a deadline on is still ending; it must end.
    limiters = target.pair.limiters
    eventually(lambda: target.idle() and all(each.held == each.waiting == 0 for each in limiters), within=60)
    wait_idle(reader, timeout=60)
    assert values(reader, "mistral_active_requests") == {(): 0}

    # Each request counted once, as its client saw it.
    by_endpoint = _counts(reader)
    assert {endpoint for endpoint, _, _ in by_endpoint} == {"/api/chat"}
    counted = {(status, error): n for (_, status, error), n in by_endpoint.items()}
    exact = Counter(outcome for call in calls if (outcome := _counted(call)) is not None)
    unseen = sum(_counted(call) is None for call in calls)
    assert set(counted) <= OUTCOMES, counted
    gone = (("200", GONE), ("499", GONE))
    assert {k: v for k, v in counted.items() if k not in gone} == {k: v for k, v in exact.items() if k not in gone}
    assert sum(counted.get(k, 0) for k in gone) == sum(exact[k] for k in gone) + unseen, (counted, exact, unseen)
    assert all(counted.get(k, 0) >= exact[k] for k in gone), (counted, exact)
    assert sum(counted.values()) == len(calls)

    # The engine (or mistral.rs) is asked once per request at most, and once for each answer.
    reached = target.reached()
    assert set(reached) <= {call.trace for call in calls}
    assert all(reached[call.trace] == 1 for call in calls if call.fate == "answer"), reached
    assert all(reached[call.trace] <= 1 for call in calls), reached


def _counts(reader: InMemoryMetricReader) -> dict[tuple[Any, ...], Any]:
    return values(reader, "mistral_http_requests", "endpoint", "status", "error_type")


def _sequences(telemetry: Telemetry, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The engine's sequences: one span each, from its slot taken to its producer's end."""
    provider = telemetry.tracer_provider
    assert isinstance(provider, TracerProvider)
    provider.force_flush()
    return [span for span in exporter.get_finished_spans() if span.name == "mistralrs chat"]


def _producers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "mistralrs-stream"]


@pytest.fixture(scope="module")
def endless_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a context longer than any run: a request without num_predict generates until stopped."""
    directory = build_tiny_model(tmp_path_factory.mktemp("session-soak") / "tiny")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 120000}))
    return directory


@pytest.fixture
def serve(telemetry: Telemetry) -> Iterator[Callable[..., tuple[Pair, Server]]]:
    """Serves a pair of proxies (stopped before the upstream and the telemetry they use)."""
    running: list[Any] = []

    def serve(main: Settings, strict: Settings, upstream: Upstream | None = None) -> tuple[Pair, Server]:
        pair = Pair(*(create_app(each, telemetry=telemetry, upstream=upstream) for each in (main, strict)))
        running.append(serve_in_thread(pair))  # type: ignore[arg-type]
        return pair, running[-1].__enter__()

    yield serve
    for context in running:
        context.__exit__(None, None, None)


@pytest.mark.timeout(300)
def test_sessions_on_the_emulator(
    emulator: Emulator,
    upstream: Server,
    metric_reader: InMemoryMetricReader,
    serve: Callable[..., tuple[Pair, Server]],
) -> None:
    # Three slots in the proxy, so that requests queue in it (mistral.rs itself takes them all at once).
    main = Settings(mistral_url=upstream.url, max_concurrent=3, queue_timeout=NEVER, first_byte_timeout=NEVER)
    pair, server = serve(main, Settings(mistral_url=upstream.url, request_timeout=SHORT_DEADLINE))

    def reached() -> Counter[str]:
        chats = (seen for seen in emulator.requests if seen.path == "/v1/chat/completions")
        return Counter(seen.headers["traceparent"].split("-")[1] for seen in chats)

    replies: dict[int, Reply] = {}
    emulator.reply_for = lambda body: replies.get(mark(body) or 0)
    mix = Mix(users=6, sessions=2, turns=3, long_history=40, patience=1.5,
              chat_odds=(0.55, 0.15, 0.15, 0.15), background_odds=(0.6, 0.25, 0.0, 0.15))  # fmt: skip
    calls = Users(server.url, "mistral-7b", mix, seed=SEED, shape=_emulated(replies)).run()
    _check(Target(pair, lambda: emulator.active_streams == 0, reached), calls, metric_reader)
    # mistral.rs was told of every endless request it got: the proxy closed each one's connection.
    endless = sum(reached()[call.trace] for call in calls if call.fate != "answer")
    eventually(lambda: len(emulator.disconnects) == endless, within=60)


@pytest.mark.timeout(300)
def test_sessions_on_the_in_process_engine(
    endless_model: Path,
    telemetry: Telemetry,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    serve: Callable[..., tuple[Pair, Server]],
) -> None:
    # One engine slot, as the default GGUF model has: every request queues in the engine, none in the proxy.
    engine, server, pair = _tiny(endless_model, telemetry, serve)

    def idle() -> bool:
        return engine.active_streams == 0 and engine.slots.held == engine.slots.waiting == 0 and not _producers()

    def reached() -> Counter[str]:
        return Counter(f"{span.context.trace_id:032x}" for span in _sequences(telemetry, span_exporter))

    # The tiny model answers only what has a num_predict: the background requests are all given up or met by
    # their deadline, and the chats behind them must still be answered. A title given up within 0.2 s, or met by
    # its 0.2 s deadline, has made far fewer than its 1000 tokens (the model makes about 1,800 a second on a quiet
    # machine, 50 on a loaded one).
    mix = Mix(users=3, sessions=1, turns=3, long_history=12, patience=0.2,
              chat_odds=(0.6, 0.15, 0.1, 0.15), background_odds=(0.0, 0.6, 0.0, 0.4))  # fmt: skip
    calls = Users(server.url, "tiny", mix, seed=SEED, shape=_tiny_shape).run()
    _check(Target(pair, idle, reached), calls, metric_reader)
    # One slot: the engine ran one sequence at a time (a span ends before its slot is given back).
    sequences = sorted(_sequences(telemetry, span_exporter), key=lambda span: span.start_time or 0)
    assert all((a.end_time or 0) <= (b.start_time or 0) for a, b in itertools.pairwise(sequences))


def _tiny(
    endless_model: Path, telemetry: Telemetry, serve: Callable[..., tuple[Pair, Server]]
) -> tuple[EmbeddedUpstream, Server, Pair]:
    settings = Settings(model=str(endless_model), engine_concurrency=1, queue_timeout=NEVER, first_byte_timeout=NEVER)
    engine = make_upstream(settings, telemetry)
    assert isinstance(engine, EmbeddedUpstream)
    pair, server = serve(settings, Settings(model=str(endless_model), request_timeout=SHORT_DEADLINE), engine)
    return engine, server, pair


# What the soak found, each on its own (issue 21): a request whose client leaves while it waits for a slot (the
# proxy's; for a stream, the engine's too) or, streamed, for its first byte, is let go only when that slot or byte
# comes; and a deadline does not bound a stream's wait for the engine's slot. The soak passes all the same (a stream
# given up before any byte may be counted 200 or 499, and none of its timers ends a wait), but the work goes on for
# no one. Strict: a fix turns them into failures until the mark goes.

HI = [{"role": "user", "content": "hi"}]


def _post(server: Server, body: dict[str, Any]) -> socket.socket:
    """``body`` sent to /api/chat on a connection of its own, nothing read: closing it is the client leaving."""
    payload = json.dumps(body).encode()
    head = ["POST /api/chat HTTP/1.1", "host: x", "content-type: application/json", f"content-length: {len(payload)}"]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall("\r\n".join([*head, "", ""]).encode() + payload)
    return sock


def _streaming(server: Server, body: dict[str, Any]) -> socket.socket:
    """An endless stream, once its first line came: it holds its slot until closed."""
    sock, received = _post(server, body), b""
    while b'"done":false' not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return sock


def test_a_stream_given_up_in_the_engines_queue_leaves_it(
    endless_model: Path, telemetry: Telemetry, serve: Callable[..., tuple[Pair, Server]]
) -> None:
    engine, server, _ = _tiny(endless_model, telemetry, serve)
    holder = _streaming(server, {"model": "tiny", "messages": HI})  # no num_predict: the one slot, for good
    try:
        with _post(server, {"model": "tiny", "messages": HI}):
            eventually(lambda: engine.slots.waiting == 1, within=30)
        # Left at once: kept, it would wait for the slot, then make its first token (a whole prefill) for no one.
        eventually(lambda: engine.slots.waiting == 0, within=5)
    finally:
        holder.close()


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_request_given_up_in_the_proxys_queue_leaves_it(
    emulator: Emulator, upstream: Server, serve: Callable[..., tuple[Pair, Server]], stream: bool
) -> None:
    pair, server = serve(*(Settings(mistral_url=upstream.url, max_concurrent=1, queue_timeout=NEVER),) * 2)
    limiter = pair.limiters[0]
    emulator.script(Reply(content=sentence(random.Random(SEED), 1500), delay=0.05))
    holder = _streaming(server, {"model": "mistral-7b", "messages": HI})
    try:
        with _post(server, {"model": "mistral-7b", "messages": HI, "stream": stream}):
            eventually(lambda: limiter.waiting == 1, within=30)
        # Left at once: kept, it would hold a place in the queue (a full one answers 503 to live clients) until a
        # slot frees, then send its request to mistral.rs for no one, or run out its wait as a 503 queue_timeout.
        eventually(lambda: limiter.waiting == 0, within=5)
    finally:
        holder.close()


def test_a_stream_given_up_before_mistral_rs_answers_ends_its_request(
    emulator: Emulator, upstream: Server, metric_reader: InMemoryMetricReader, serve: Callable[..., tuple[Pair, Server]]
) -> None:
    _, server = serve(*(Settings(mistral_url=upstream.url, first_byte_timeout=NEVER),) * 2)
    emulator.script(Reply(first_byte_delay=3600))  # mistral.rs busy: its queue, a long prefill
    with _post(server, {"model": "mistral-7b", "messages": HI}):
        eventually(lambda: any(seen.path == "/v1/chat/completions" for seen in emulator.requests), within=30)
    # Ended at once, not held (with the proxy's slot) until FIRST_BYTE_TIMEOUT_SECS and counted as a 504.
    eventually(lambda: len(emulator.disconnects) == 1, within=5)
    wait_idle(metric_reader)
    assert [error for _, _, error in _counts(metric_reader)] == [GONE]


def test_a_streams_deadline_ends_its_wait_for_the_engine(
    endless_model: Path,
    telemetry: Telemetry,
    span_exporter: InMemorySpanExporter,
    serve: Callable[..., tuple[Pair, Server]],
) -> None:
    engine, server, _ = _tiny(endless_model, telemetry, serve)
    holder = _streaming(server, {"model": "tiny", "messages": HI})
    try:
        # Its deadline ends its wait for the slot: the engine never starts its sequence.
        body = {"model": "tiny", "messages": HI, "stream": True}
        answer = httpx.post(f"{server.url}/api/chat", json=body, headers={"x-deadline": "short"}, timeout=5)
    finally:
        holder.close()
    assert (answer.status_code, answer.json()) == (504, DEADLINE)
    eventually(lambda: engine.slots.held == 0 and not _producers(), within=30)
    assert len(_sequences(telemetry, span_exporter)) == 1  # the holder's only
