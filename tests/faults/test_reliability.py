"""The fault suite: limits, overload, timeouts, auth and readiness over real HTTP against the emulator."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.bounds import Bounds
from app.main import create_app
from app.settings import Settings
from otel.telemetry import Telemetry
from tests.emulator import Emulator, Reply
from tests.otel.helpers import finished_spans, values, wait_idle
from tests.processes import free_port
from tests.servers import Server, serve_in_thread
from tests.waiting import eventually

HI = [{"role": "user", "content": "hi"}]
BUSY = {"error": "server busy, please try again.  maximum pending requests exceeded"}


@pytest.fixture
def configure(upstream: Server, telemetry: Telemetry) -> Iterator[Any]:
    """A proxy in front of the emulator with some settings changed; yields an httpx client to it."""
    servers: list[Any] = []

    def start(**changes: Any) -> httpx.Client:
        transport = os.environ.get("TEST_UPSTREAM_TRANSPORT", "aiohttp")
        settings = Settings(
            mistral_url=upstream.url,
            model_aliases={"mistral:latest": "mistral-7b"},
            upstream_transport=transport,
            **changes,
        )
        context = serve_in_thread(create_app(settings, telemetry=telemetry))
        server = context.__enter__()
        client = httpx.Client(base_url=server.url, timeout=30)
        servers.append((context, client, server))
        return client

    yield start
    for context, client, _ in servers:
        client.close()
        context.__exit__(None, None, None)


def _counts(reader: InMemoryMetricReader) -> dict[tuple[Any, ...], Any]:
    wait_idle(reader)
    return values(reader, "mistral_http_requests", "endpoint", "status", "error_type")


def test_body_over_the_limit_is_413(configure: Any, metric_reader: InMemoryMetricReader) -> None:
    http = configure(max_body_bytes=1000)
    big = {"model": "mistral", "messages": [{"role": "user", "content": "x" * 2000}]}
    response = http.post("/api/chat", json=big)
    assert (response.status_code, response.json()) == (
        413,
        {"error": "request body too large (the limit is 1000 bytes)"},
    )
    chunked = http.post("/api/chat", content=iter([json.dumps(big).encode()]))  # no Content-Length
    assert (chunked.status_code, chunked.json()) == (413, {"error": "request body too large (the limit is 1000 bytes)"})
    assert _counts(metric_reader) == {("/api/chat", "413", "payload_too_large"): 2}


def test_too_many_messages_and_too_large_images(configure: Any) -> None:
    http = configure(bounds=Bounds(messages=2, image_bytes=30))
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI * 3})
    assert (response.status_code, response.json()) == (400, {"error": "too many messages: 3 (the limit is 2)"})
    image = base64.b64encode(b"\x89PNG" + b"0" * 60).decode()
    body = {"model": "mistral", "prompt": "what is it?", "images": [image]}
    response = http.post("/api/generate", json=body)
    assert (response.status_code, response.json()) == (413, {"error": "image too large: 64 bytes (the limit is 30)"})


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_every_list_in_an_ollama_request_is_bounded(configure: Any, emulator: Emulator) -> None:
    bounds = Bounds(images=2, image_total_bytes=100, tools=1, stop=2, inputs=2)
    http = configure(bounds=bounds)
    image = base64.b64encode(b"\x89PNG" + b"0" * 56).decode()  # 60 bytes
    seen = [{"role": "user", "content": "look", "images": [image]}]
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    call = {"function": {"name": "f", "arguments": {}}}
    chat = {"model": "mistral", "stream": False}
    refusals = [
        ("/api/chat", {**chat, "messages": [*seen, *seen, *seen]}, "too many images: 3 (the limit is 2)"),
        ("/api/chat", {**chat, "messages": HI, "tools": [tool, tool]}, "too many tools: 2 (the limit is 1)"),
        ("/api/chat", {**chat, "messages": [{"role": "assistant", "content": "", "tool_calls": [call, call]}]},
         "too many tool calls in a message: 2 (the limit is 1)"),
        ("/api/chat", {**chat, "messages": HI, "options": {"stop": ["a", "b", "c"]}},
         "too many stop sequences: 3 (the limit is 2)"),
        ("/api/generate", {**chat, "prompt": "what?", "images": [image] * 3}, "too many images: 3 (the limit is 2)"),
        ("/api/generate", {**chat, "prompt": "hi", "options": {"stop": ["a", "b", "c"]}},
         "too many stop sequences: 3 (the limit is 2)"),
        ("/api/embed", {"model": "mistral", "input": ["a", "b", "c"]}, "too many inputs: 3 (the limit is 2)"),
    ]  # fmt: skip
    for path, body, message in refusals:
        assert _error(http.post(path, json=body)) == (400, message), path
    # Two images of 60 bytes: each within its own limit, together over the request's.
    response = http.post("/api/chat", json={**chat, "messages": [*seen, *seen]})
    assert _error(response) == (413, "images too large: over 100 bytes in one request (the limit is 100)")
    assert [r for r in emulator.requests if r.path.startswith("/v1/")] == []  # nothing reached mistral.rs
    emulator.script(Reply(content="fine"))
    response = http.post("/api/chat", json={**chat, "messages": seen, "tools": [tool], "options": {"stop": ["a", "b"]}})
    assert (response.status_code, response.json()["message"]["content"]) == (200, "fine")


def test_every_list_in_an_anthropic_or_responses_request_is_bounded(configure: Any, emulator: Emulator) -> None:
    """Each bound at its limit is answered, and one past it is refused in the route's own error shape."""
    http = configure(bounds=Bounds(messages=2, images=2, tools=1, stop=2, content_parts=2))
    image = base64.b64encode(b"\x89PNG" + b"0" * 56).decode()
    text = {"type": "text", "text": "hi"}
    picture = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}}
    tool = {"name": "f", "input_schema": {"type": "object"}}
    result = {"type": "tool_result", "tool_use_id": "t", "content": [text, text]}
    messages = {"model": "mistral", "max_tokens": 8, "messages": HI}
    within = [
        {**messages, "tools": [tool], "stop_sequences": ["a", "b"], "system": [text, text]},  # two messages
        {**messages, "messages": HI * 2},
        {**messages, "messages": [{"role": "user", "content": [picture, picture]}]},
        {**messages, "messages": [{"role": "user", "content": [result, text]}]},
    ]
    past = [
        ({**messages, "messages": HI * 3}, "too many messages: 3 (the limit is 2)"),
        ({**messages, "tools": [tool, tool]}, "too many tools: 2 (the limit is 1)"),
        ({**messages, "stop_sequences": ["a", "b", "c"]}, "too many stop sequences: 3 (the limit is 2)"),
        ({**messages, "system": [text] * 3}, "too many content blocks: 3 (the limit is 2)"),
        ({**messages, "messages": [{"role": "user", "content": [text] * 3}]},
         "too many content blocks: 3 (the limit is 2)"),
        ({**messages, "messages": [{"role": "user", "content": [{**result, "content": [text] * 3}]}]},
         "too many content blocks: 3 (the limit is 2)"),
        ({**messages, "messages": [{"role": "user", "content": [picture, picture]}, {"role": "user", "content": [
            picture]}]}, "too many images: 3 (the limit is 2)"),
    ]  # fmt: skip
    for body in within:
        emulator.script(Reply(content="fine"))
        response = http.post("/v1/messages", json=body)
        assert (response.status_code, response.json().get("content")) == (200, [{"type": "text", "text": "fine"}]), (
            response.text
        )
    for body, message in past:
        response = http.post("/v1/messages", json=body)
        error = response.json()
        assert (response.status_code, error["type"], error["error"]) == (
            400, "error", {"type": "invalid_request_error", "message": message})  # fmt: skip

    function = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    namespace = {"type": "namespace", "name": "ns", "tools": [function, function]}
    part = {"type": "input_text", "text": "hi"}
    shown = {"type": "input_image", "image_url": f"data:image/png;base64,{image}"}
    responses = {"model": "mistral", "input": HI}
    within = [
        {**responses, "input": [{"role": "user", "content": [part, part]}, *HI], "tools": [function]},
        {**responses, "input": [{"role": "user", "content": [shown, shown]}]},
        {**responses, "input": [{"type": "function_call_output", "call_id": "c", "output": [part, part]}]},
    ]
    past = [
        ({**responses, "input": HI * 3}, "too many input items: 3 (the limit is 2)"),
        ({**responses, "tools": [function, function]}, "too many tools: 2 (the limit is 1)"),
        ({**responses, "tools": [namespace]}, "too many tools: 2 (the limit is 1)"),
        ({**responses, "input": [{"role": "user", "content": [part] * 3}]},
         "too many content parts in an input item: 3 (the limit is 2)"),
        ({**responses, "input": [{"type": "function_call_output", "call_id": "c", "output": [part] * 3}]},
         "too many content parts in an input item: 3 (the limit is 2)"),
        ({**responses, "input": [{"role": "user", "content": [shown, shown]}, {"role": "user", "content": [shown]}]},
         "too many images: 3 (the limit is 2)"),
    ]  # fmt: skip
    for body in within:
        emulator.script(Reply(content="fine"))
        response = http.post("/v1/responses", json=body)
        assert (response.status_code, response.json()["output"][0]["content"][0]["text"]) == (200, "fine")
    for body, message in past:
        response = http.post("/v1/responses", json=body)
        assert (response.status_code, response.json()["error"]) == (
            400, {"message": message, "type": "invalid_request_error", "param": None, "code": None})  # fmt: skip
    # Only the seven within their limits reached mistral.rs.
    assert len([r for r in emulator.requests if r.path == "/v1/chat/completions"]) == 7


def test_a_body_of_too_many_items_is_refused_as_it_arrives(configure: Any, emulator: Emulator) -> None:
    http = configure(bounds=Bounds(body_items=1000))
    many = b'{"model": "mistral", "prompt": "hi", "images": [' + b",".join([b'"QQ=="'] * 1001) + b"]}"
    expected = (413, "request body holds too many items: over 1000 (the limit is 1000)")
    assert _error(http.post("/api/generate", content=many)) == expected
    assert _error(http.post("/api/generate", content=iter([many[:3000], many[3000:]]))) == expected  # chunked
    openai = http.post("/v1/chat/completions", content=many)
    assert (openai.status_code, openai.json()["error"]["message"]) == expected
    assert [r for r in emulator.requests if r.path.startswith("/v1/")] == []
    few = b'{"model": "mistral", "messages": [{"role": "user", "content": "' + b"," * 900 + b'"}], "stream": false}'
    emulator.script(Reply(content="fine"))
    assert http.post("/api/chat", content=few).json()["message"]["content"] == "fine"  # 901 commas: within


def test_n_plus_k_streams_against_a_limit_of_n(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader
) -> None:
    http = configure(max_concurrent=2, max_queue=0)
    emulator.script(*[Reply(content="a b c d", delay=0.2) for _ in range(5)])
    statuses: list[int] = []
    retry_after: list[str] = []

    def stream() -> None:
        with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
            lines = [json.loads(line) for line in response.iter_lines()]
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert lines == [BUSY]
                retry_after.append(response.headers["retry-after"])
            else:
                assert lines[-1]["done"] is True

    threads = [threading.Thread(target=stream) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 200, 503, 503, 503]
    assert retry_after == ["1", "1", "1"]
    assert _counts(metric_reader) == {("/api/chat", "200", "none"): 2, ("/api/chat", "503", "overloaded"): 3}


def test_a_bounded_queue_waits_then_gives_up(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader
) -> None:
    http = configure(max_concurrent=1, max_queue=1, queue_timeout=0.3)
    emulator.script(Reply(content="a b c d e", delay=0.3))
    with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as holding:
        lines = holding.iter_lines()  # keep the iterator: dropping it would close the stream
        next(lines)
        waited = http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False})
        waited_for = {"error": "server busy, please try again.  no slot became free within 0.3 s"}
        assert (waited.status_code, waited.json()) == (503, waited_for)
        assert waited.headers["retry-after"] == "1"
        assert json.loads(list(lines)[-1])["done"] is True
    assert http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False}).status_code == 200
    assert _counts(metric_reader) == {("/api/chat", "200", "none"): 2, ("/api/chat", "503", "queue_timeout"): 1}


def test_mistralrs_silent_before_its_first_byte_is_504(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader
) -> None:
    http = configure(first_byte_timeout=0.3)
    emulator.script(Reply(content="late", first_byte_delay=5.0))
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI})
    assert (response.status_code, response.json()) == (504, {"error": "mistral.rs sent nothing for 0.3 s"})
    assert _counts(metric_reader) == {("/api/chat", "504", "upstream_timeout"): 1}


def test_a_stall_mid_stream_ends_it_with_an_error_line(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader
) -> None:
    http = configure(first_byte_timeout=5.0, idle_timeout=0.3)
    emulator.script(Reply(content="a b c", stall_after=1))
    lines = [
        json.loads(line) for line in http.post("/api/chat", json={"model": "mistral", "messages": HI}).text.splitlines()
    ]
    assert lines[0]["message"]["content"] == "a"
    assert lines[-1] == {"error": "mistral.rs stalled: nothing for 0.3 s"}
    assert _counts(metric_reader) == {("/api/chat", "200", "upstream_timeout"): 1}
    # the emulator notices the closed connection on its own loop, a moment after the proxy closed it
    eventually(lambda: emulator.active_streams == 0, within=1.0)


def test_the_total_time_limit(configure: Any, emulator: Emulator) -> None:
    http = configure(request_timeout=0.5, idle_timeout=5.0)
    emulator.script(Reply(content="a b c d e f", delay=0.2))
    lines = http.post("/api/generate", json={"model": "mistral", "prompt": "x"}).text.splitlines()
    assert json.loads(lines[-1]) == {"error": "the request exceeded its time limit"}
    assert 1 <= len(lines) - 1 <= 3


def test_a_metrics_token_alone_protects_only_the_metrics(configure: Any) -> None:
    http = configure(metrics_token="scrape-secret")
    assert http.get("/api/tags").status_code == 200
    assert http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False}).status_code == 200
    for path in ("/metrics", "/api/metrics"):
        refused = http.get(path)
        assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer"), path
        assert http.get(path, headers={"authorization": "Bearer scrape-secret"}).status_code == 200, path


def test_api_keys(configure: Any, proxy: Server, telemetry: Telemetry, span_exporter: InMemorySpanExporter,
                  caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    http = configure(api_keys=("key-one-secret", "key-two-secret"), metrics_token="scrape-secret")
    unauthorized = {"error": "unauthorized: a valid API key is required (Authorization: Bearer …)"}
    missing = http.get("/api/tags")
    assert (missing.status_code, missing.json()) == (401, unauthorized)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert http.get("/api/tags", headers={"authorization": "Bearer nope"}).status_code == 401
    assert http.get("/api/tags", headers={"authorization": "Basic key-one-secret"}).status_code == 401
    assert http.get("/api/tags", headers={"authorization": "Bearer key-two-secret"}).status_code == 200
    for public in ("/", "/health", "/ready"):
        assert http.get(public).status_code == 200, public
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers={"authorization": "Bearer scrape-secret"}).status_code == 200
    port = http.base_url.port
    with ollama.Client(host=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer key-one-secret"}) as client:
        assert client.chat(model="mistral", messages=HI).message.content == "Hello from the emulator."
    spans = finished_spans(telemetry.tracer_provider, span_exporter, servers=8)
    text = json.dumps([dict(span.attributes or {}) for span in spans], default=str) + caplog.text
    for secret in ("key-one-secret", "key-two-secret", "scrape-secret", "Hello from the emulator", '"hi"'):
        assert secret not in text


def test_readiness_follows_the_upstream(configure: Any) -> None:
    http = configure()
    assert (http.get("/ready").status_code, http.get("/ready").json()) == (200, {"status": "ready", "upstream": "up"})
    with serve_in_thread(create_app(Settings(mistral_url="http://127.0.0.1:9"))) as dead:
        response = httpx.get(f"{dead.url}/ready")
        assert (response.status_code, response.json()) == (503, {"status": "not ready", "upstream": "down"})
        assert httpx.get(f"{dead.url}/").text == "Ollama is running"  # liveness is not readiness


@pytest.mark.parametrize(
    ("status", "body", "client_status", "error", "error_type"),
    [
        (500, b'{"message":"No models are currently loaded."}', 502,
         "mistral.rs error: No models are currently loaded.", "upstream_status"),
        (422, b'{"message":"Prompt sequence length is greater than 4096"}',
         400, "Prompt sequence length is greater than 4096", "upstream_status"),
        (503, b"overloaded", 503, "mistral.rs is busy: overloaded", "upstream_busy"),
        (429, b'{"message":"rate limited"}', 429, "mistral.rs is busy: rate limited", "upstream_busy"),
        (400, b'{"error":{"message":"top_p must be in (0, 1]","type":"invalid_request_error"}}', 400,
         "top_p must be in (0, 1]", "upstream_status"),
        (404, b"no route", 404, "no route", "upstream_status"),
    ],
)  # fmt: skip
def test_mistralrs_error_statuses(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader,
    status: int, body: bytes, client_status: int, error: str, error_type: str,
) -> None:  # fmt: skip
    http = configure()
    emulator.script(Reply(status=status, body=body, status_headers={"Retry-After": "7"}))
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI})
    assert (response.status_code, response.json()) == (client_status, {"error": error})
    if client_status in (429, 503):  # overload: the client learns when to come back, from mistral.rs
        assert response.headers["retry-after"] == "7"
    assert _counts(metric_reader) == {("/api/chat", str(client_status), error_type): 1}
    assert values(metric_reader, "mistral_active_requests") == {(): 0}


LOST = "the connection to mistral.rs at {upstream} was lost"


@pytest.mark.parametrize(
    ("fault", "error", "error_type"),
    [
        (Reply(content="a b c", malformed_after=1), "mistral.rs sent a malformed stream chunk", "upstream_protocol"),
        (Reply(content="a b c", malformed_after=1, burst=True), "mistral.rs sent a malformed stream chunk",
         "upstream_protocol"),
        (Reply(content="a b c", reset_after=1), LOST, "upstream_unavailable"),
        (Reply(content="a b c", error_after=1, error_message="CUDA out of memory"), "mistral.rs: CUDA out of memory",
         "upstream_error"),
        (Reply(content="a b c", error_after=1, error_message="CUDA out of memory", burst=True),
         "mistral.rs: CUDA out of memory", "upstream_error"),
        (Reply(content="a b c", reset_after=1, burst=True), LOST,
         "upstream_unavailable"),
    ],
)  # fmt: skip
def test_faults_mid_stream_end_with_an_error_line(
    configure: Any, emulator: Emulator, upstream: Server, metric_reader: InMemoryMetricReader, fault: Reply,
    error: str, error_type: str,
) -> None:  # fmt: skip
    http = configure()
    emulator.script(fault)
    response = http.post("/api/generate", json={"model": "mistral", "prompt": "x"})
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert response.status_code == 200
    assert lines[0]["response"] == "a"
    assert lines[-1] == {"error": error.format(upstream=upstream.url)}
    assert not any(line.get("done") for line in lines)
    assert _counts(metric_reader) == {("/api/generate", "200", error_type): 1}
    assert values(metric_reader, "mistral_active_requests") == {(): 0}
    eventually(lambda: emulator.active_streams == 0, within=1.0)


def test_keep_alives_count_as_life(configure: Any, emulator: Emulator) -> None:
    http = configure(idle_timeout=0.3)
    emulator.script(Reply(content="a b", stall_after=1, stall_for=1.0, stall_keepalive=True))
    lines = [
        json.loads(line) for line in http.post("/api/chat", json={"model": "mistral", "messages": HI}).text.splitlines()
    ]
    assert [line["message"]["content"] for line in lines] == ["a", " b", ""]
    assert lines[-1]["done"] is True


def test_a_malformed_first_chunk_is_a_502_before_the_stream(configure: Any, emulator: Emulator) -> None:
    http = configure()
    emulator.script(Reply(content="a b", malformed_after=0))
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI})
    assert (response.status_code, response.json()) == (502, {"error": "mistral.rs sent a malformed stream chunk"})


def test_idempotent_gets_are_retried_with_backoff(configure: Any, emulator: Emulator) -> None:
    http = configure()
    emulator.fail_next_gets(2)
    response = http.get("/api/tags")
    assert response.status_code == 200
    assert [r.path for r in emulator.requests if r.method == "GET"][-3:] == ["/v1/models"] * 3
    emulator.fail_next_gets(3)
    response = http.get("/api/tags")
    assert (response.status_code, response.json()) == (503, {"error": "mistral.rs is busy: Service Unavailable"})


def test_generations_are_never_retried(configure: Any, emulator: Emulator) -> None:
    http = configure()
    emulator.script(Reply(status=503, body=b'{"message":"busy"}'))
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False})
    assert response.status_code == 503
    assert [r.path for r in emulator.requests].count("/v1/chat/completions") == 1


def test_mistralrs_restarting_between_requests(telemetry: Telemetry, metric_reader: InMemoryMetricReader) -> None:
    emulator, port = Emulator(), free_port()
    body = {"model": "mistral-7b", "messages": HI, "stream": False}
    first = serve_in_thread(emulator.app, port=port)
    first.__enter__()
    settings = Settings(mistral_url=f"http://127.0.0.1:{port}")
    with serve_in_thread(create_app(settings, telemetry=telemetry)) as proxy, httpx.Client(base_url=proxy.url) as http:
        assert http.post("/api/chat", json=body).status_code == 200
        first.__exit__(None, None, None)  # mistral.rs stops
        down = http.post("/api/chat", json=body)
        unreachable = {"error": f"could not connect to mistral.rs at http://127.0.0.1:{port}"}
        assert (down.status_code, down.json()) == (502, unreachable)
        with serve_in_thread(emulator.app, port=port):  # and comes back on the same address
            emulator.restart()
            assert http.post("/api/chat", json=body).json()["message"]["content"] == "Hello from the emulator."
            assert emulator.next_id == 1  # a fresh server's counter
    assert _counts(metric_reader) == {("/api/chat", "200", "none"): 2, ("/api/chat", "502", "upstream_unavailable"): 1}


def _half_sent(base_url: str, path: str, declared: int, sent: bytes) -> socket.socket:
    """A connection that sent its headers and part of its body, then went quiet."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n")  # fmt: skip
    sock.sendall(head.encode() + sent)
    return sock


def test_a_body_that_stops_arriving_gets_408_and_counts_as_the_clients(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader
) -> None:
    http = configure(body_read_timeout=0.3)
    sock = _half_sent(str(http.base_url), "/api/chat", 500, b'{"model": "mistral", "mess')
    try:
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {"error": "the request body stopped arriving (nothing for 0.3 s)"}
    assert _counts(metric_reader) == {("/api/chat", "408", "request_timeout"): 1}
    assert values(metric_reader, "mistral_active_requests") == {(): 0}
    # Once a body is complete nothing is timed: this answer streams for longer than the body timeout.
    emulator.script(Reply(content="a b c d", delay=0.2))
    with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
        lines = [json.loads(line) for line in response.iter_lines()]
    assert response.status_code == 200 and lines[-1]["done"] is True and len(lines) == 5


def test_an_abandoned_upload_is_a_client_disconnect_not_a_server_error(
    configure: Any, metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    http = configure()
    sock = _half_sent(str(http.base_url), "/api/chat", 5000, b'{"model": "mistral", "messages": [')
    sock.close()
    assert _counts(metric_reader) == {("/api/chat", "499", "client_disconnected"): 1}
    assert values(metric_reader, "mistral_active_requests") == {(): 0}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_answer_without_choices_is_a_502_not_an_empty_answer(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader, stream: bool
) -> None:
    http = configure()
    body = (b'data: {"id":"x","model":"mistral-7b","choices":[]}\n\ndata: [DONE]\n\n' if stream
            else b'{"id":"x","object":"chat.completion","model":"mistral-7b"}')  # fmt: skip
    emulator.script(Reply(status=200, body=body))
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": stream})
    what = "a stream without any choices" if stream else "an answer without choices"
    assert (response.status_code, response.json()) == (502, {"error": f"mistral.rs sent {what}"})
    assert _counts(metric_reader) == {("/api/chat", "502", "upstream_protocol"): 1}


def test_no_client_side_failure_ever_moves_a_5xx_series(
    configure: Any, emulator: Emulator, metric_reader: InMemoryMetricReader
) -> None:
    http = configure(body_read_timeout=0.3, max_body_bytes=10_000)
    base = str(http.base_url)
    assert http.post("/api/chat", content=b'{"model": [').status_code == 400  # bad JSON
    assert http.post("/api/chat", json={"model": "nope", "messages": HI}).status_code == 404  # unknown model
    assert http.post("/api/chat", content=b"x" * 20_000).status_code == 413  # too large
    _half_sent(base, "/api/chat", 500, b'{"model"').close()  # abandoned upload
    slow = _half_sent(base, "/api/generate", 500, b'{"model"')  # body timeout
    slow.settimeout(10)
    assert slow.recv(4096).startswith(b"HTTP/1.1 408 ")
    slow.close()
    emulator.script(Reply(content="a " * 50, delay=0.05))
    with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
        next(response.iter_lines())  # and hang up mid-stream
    emulator.script(Reply(content="a b c", delay=0.5))  # a whole answer after 1.5 s
    with pytest.raises(httpx.ReadTimeout):  # a client that gives up before the answer
        httpx.post(f"{base}/api/chat", json={"model": "mistral", "messages": HI, "stream": False}, timeout=0.3)
    eventually(lambda: sum(_counts(metric_reader).values()) == 7, within=10.0)
    counted = _counts(metric_reader)
    assert [key for key in counted if key[1].startswith("5")] == [], counted
    assert {key[2] for key in counted} == {"invalid_request", "model_not_found", "payload_too_large",
                                          "client_disconnected", "request_timeout"}  # fmt: skip
