"""Raw HTTP against the proxy: framing, content types, defaults and every error case."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.types import Message, Receive, Scope, Send

from app.main import create_app
from app.settings import Settings
from otel.telemetry import Telemetry
from tests.emulator import Emulator, Reply
from tests.otel.helpers import values, wait_idle
from tests.servers import Server, serve_in_thread
from tests.waiting import eventually

HI = [{"role": "user", "content": "hi"}]
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def _lines(response: httpx.Response) -> list[dict[str, object]]:
    text = response.text
    assert text.endswith("\n") and "\n\n" not in text
    return [json.loads(line) for line in text.splitlines()]


def test_liveness_and_version(http: httpx.Client) -> None:
    root = http.get("/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert root.headers["content-type"] == "text/plain; charset=utf-8"
    head = http.head("/")
    assert (head.status_code, head.content) == (200, b"")
    version = http.get("/api/version")
    assert version.json() == {"version": "0.33.0"}
    assert version.headers["content-type"] == "application/json; charset=utf-8"
    assert http.head("/api/version").status_code == 200
    assert http.head("/api/tags").status_code == 200


def test_unknown_path_and_wrong_method_answer_like_gin(http: httpx.Client) -> None:
    missing = http.get("/api/nope")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert missing.headers["content-type"].startswith("text/plain")
    wrong = http.get("/api/chat")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


def test_stream_is_the_default_and_is_ndjson(http: httpx.Client) -> None:
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = _lines(response)
    assert all(RFC3339_UTC.match(str(line["created_at"])) for line in lines)
    assert [line["done"] for line in lines] == [False] * 4 + [True]
    final = lines[-1]
    assert final["done_reason"] == "stop"
    assert all(type(final[name]) is int for name in DURATIONS)
    assert (final["prompt_eval_count"], final["eval_count"]) == (4, 4)
    assert all(set(line) == {"model", "created_at", "message", "done"} for line in lines[:-1])


def test_non_streamed_answer_is_one_json_object(http: httpx.Client) -> None:
    response = http.post("/api/generate", json={"model": "mistral", "prompt": "hi", "stream": False})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["response"] == "Hello from the emulator." and body["done"] is True
    assert "\n" not in response.text


def test_stream_is_relayed_chunk_by_chunk(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c", delay=0.3))
    with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
        first = next(response.iter_lines())
    assert json.loads(first)["message"]["content"] == "a"


@pytest.mark.parametrize(
    ("path", "body", "events_of"),
    [
        ("/api/chat", {"model": "mistral", "messages": HI}, lambda write: write.count(b"\n")),
        ("/v1/chat/completions", {"model": "mistral-7b", "messages": HI, "stream": True},
         lambda write: write.count(b"\n\n")),
    ],
)  # fmt: skip
def test_a_burst_from_mistralrs_goes_out_in_one_write(
    settings: Settings, telemetry: Telemetry, metric_reader: InMemoryMetricReader, emulator: Emulator,
    path: str, body: dict[str, Any], events_of: Callable[[bytes], int],
) -> None:  # fmt: skip
    emulator.script(Reply(content="a b c d", burst=True))
    app = create_app(settings, telemetry=telemetry)
    writes: list[bytes] = []

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                writes.append(message["body"])
            await send(message)

        await app(scope, receive, recorded)

    with serve_in_thread(recording) as proxy:
        received = httpx.post(f"{proxy.url}{path}", json=body).content
    if path == "/api/chat":
        contents = [json.loads(line)["message"]["content"] for line in received.splitlines()]
        assert contents == ["a", " b", " c", " d", ""]
        assert [events_of(write) for write in writes] == [4, 1]  # the final object follows the burst
    else:
        events = received.count(b"data: ")
        assert events > 4 and received.endswith(b"data: [DONE]\n\n")
        assert [events_of(write) for write in writes] == [events - 1, 1]  # [DONE] follows the burst
    assert b"".join(writes) == received
    wait_idle(metric_reader)
    assert values(metric_reader, "mistral_streaming_chunks", "endpoint") == {(path,): sum(map(events_of, writes))}


def test_client_disconnect_mid_stream_closes_the_upstream_stream(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c d e f g h", delay=0.2))
    with http.stream("POST", "/api/chat", json={"model": "mistral", "messages": HI}) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["message"]["content"] == "a"
        left = time.monotonic()
    eventually(lambda: emulator.disconnects, within=1.0)
    assert len(emulator.disconnects) == 1
    assert emulator.disconnects[0] - left < 0.1
    eventually(lambda: emulator.active_streams == 0, within=1.0)


def test_client_disconnect_before_a_collected_answer_closes_upstream(proxy: Server, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c d e f g h", first_byte_delay=5.0))
    body = {"model": "mistral", "messages": HI, "stream": False}
    with httpx.Client(base_url=proxy.url, timeout=0.3) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/api/chat", json=body)
    eventually(lambda: emulator.disconnects, within=1.0)
    assert len(emulator.disconnects) == 1
    eventually(lambda: emulator.active_streams == 0, within=1.0)


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/chat", b"", 400, "missing request body"),
        ("/api/generate", b"", 400, "missing request body"),
        ("/api/chat", b"{", 400, "unexpected EOF"),
        ("/api/chat", b"x", 400, "invalid character 'x' looking for beginning of value"),
        ("/api/chat", b'{"model":1}', 400, "invalid request: Expected `str`, got `int` - at `$.model`"),
        ("/api/chat", b"null", 400, "invalid request: Expected `object`, got `null`"),
        ("/api/chat", b'{"model":"m\xff"}', 400, "invalid JSON: the request body is not valid UTF-8"),
        ("/api/chat", b'{"messages":[]}', 400, "model is required"),
        ("/api/generate", b'{"prompt":"hi"}', 400, "model is required"),
        ("/api/show", b"{}", 400, "model is required"),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"user","content":"x"}],"options":{"seed":1e400}}',
            400,
            "invalid request: Number out of range - at `$.options.seed`",
        ),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"user","content":"x"}],'
            b'"options":{"num_predict":99999999999999999999}}',
            400,
            "invalid request: Expected `int` <= 9223372036854775807 - at `$.options.num_predict`",
        ),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"user","content":"x"}],"options":{"temperature":"hot"}}',
            400,
            "invalid request: Expected `float | null`, got `str` - at `$.options.temperature`",
        ),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"bot","content":"x"}]}',
            400,
            'invalid message role "bot" (must be system, user, assistant or tool)',
        ),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"user","content":"x","images":["@@@"]}]}',
            400,
            "illegal base64 data at input byte 0",
        ),
        (
            "/api/chat",
            '{"model":"mistral","messages":[{"role":"user","content":"x","images":["QUJD\u00e9"]}]}'.encode(),
            400,
            "illegal base64 data at input byte 4",
        ),
        (
            "/api/generate",
            '{"model":"mistral","prompt":"x","images":["\u00e9t\u00e9"]}'.encode(),
            400,
            "illegal base64 data at input byte 0",
        ),
        (
            "/api/generate",
            b'{"model":"mistral","prompt":"x","images":["QUJDR"]}',
            400,
            "illegal base64 data at input byte 4",
        ),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"user","content":"x"}],"options":'
            + b'{"a":' * 100_000
            + b"1"
            + b"}" * 100_001,
            400,
            "invalid JSON: nested too deeply",
        ),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"user","content":"bad \\ud800 half"}]}',
            400,
            "invalid JSON: \\ud800 is half of a UTF-16 surrogate pair, with no other half: not a character",
        ),
        (
            "/api/generate",
            b'{"model":"mistral","prompt":"\\udc00 alone"}',
            400,
            "invalid JSON: \\udc00 is half of a UTF-16 surrogate pair, with no other half: not a character",
        ),
        (
            "/api/chat",
            b'{"model":"mistral","messages":[{"role":"user","content":"x"}],"format":"xml"}',
            400,
            'invalid format: "xml" (expected "json" or a JSON schema)',
        ),
        (
            "/api/generate",
            b'{"model":"mistral","prompt":"x","keep_alive":"soon"}',
            400,
            'time: invalid duration "soon"',
        ),
        (
            "/api/generate",
            b'{"model":"mistral","prompt":"x","raw":true,"system":"s"}',
            400,
            "raw mode does not support template, system, or context",
        ),
        ("/api/chat", b'{"model":"nope","messages":[]}', 404, "model 'nope' not found"),
        (
            "/api/create",
            b'{"model":"x"}',
            501,
            "creating models is not supported: models are managed by mistral.rs, not through this API",
        ),
        (
            "/api/push",
            b'{"model":"mistral"}',
            501,
            "pushing models is not supported: models are managed by mistral.rs, not through this API",
        ),
        ("/api/push", b'{"model":"nope"}', 404, "model 'nope' not found"),
        (
            "/api/blobs/sha256:abc",
            b"data",
            501,
            "uploading blobs is not supported: models are managed by mistral.rs, not through this API",
        ),
    ],
)
def test_bad_requests_get_ollama_errors(http: httpx.Client, path: str, body: bytes, status: int, error: str) -> None:
    response = http.post(path, content=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"error": error}


def test_blob_head_is_not_found(http: httpx.Client) -> None:
    assert http.head("/api/blobs/sha256:abc").status_code == 404


def test_unknown_fields_legacy_options_and_nulls_are_ignored(http: httpx.Client, emulator: Emulator) -> None:
    options = {"mirostat": 0, "tfs_z": 1.0, "num_ctx": 4096, "temperature": None, "top_k": 7, "stop": "\n"}
    body = {"model": "mistral", "messages": HI, "stream": False, "options": options, "whatever": [1]}
    assert http.post("/api/chat", json=body).status_code == 200
    sent = emulator.requests[-1].body
    assert {k: sent[k] for k in ("top_k", "stop")} == {"top_k": 7, "stop": ["\n"]}
    assert sent["temperature"] == 0.8 and "num_ctx" not in sent  # null is not given: Ollama's default applies


def test_model_names_are_case_insensitive_tag_optional_and_aliased(http: httpx.Client, emulator: Emulator) -> None:
    for name in ("mistral", "MISTRAL:latest", "mistral-7b", "Mistral-7B:latest", "default"):
        response = http.post("/api/chat", json={"model": name, "messages": HI, "stream": False})
        assert response.status_code == 200, name
        assert response.json()["model"] == name  # echoed as sent, like Ollama
    assert [r.body["model"] for r in emulator.requests if r.path == "/v1/chat/completions"] == [
        "mistral-7b",
        "mistral-7b",
        "mistral-7b",
        "mistral-7b",
        "default",
    ]
    assert http.post("/api/chat", json={"model": "mistral:7b", "messages": HI}).status_code == 404


def test_images_become_image_parts(http: httpx.Client, emulator: Emulator) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode()
    message = {"role": "user", "content": "what is this?", "images": [png]}
    http.post("/api/chat", json={"model": "mistral", "messages": [message], "stream": False})
    assert emulator.requests[-1].body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            ],
        }
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_generate_context_continues_the_conversation(http: httpx.Client, emulator: Emulator, stream: bool) -> None:
    emulator.script(Reply(content="Paris."), Reply(content="About 2 million."))
    first = http.post("/api/generate", json={"model": "mistral", "prompt": "Capital of France?", "stream": stream})
    context = json.loads(first.text.splitlines()[-1])["context"]
    second = http.post("/api/generate", json={"model": "mistral", "prompt": "Its population?", "context": context,
                                              "system": "Be brief.", "stream": False})  # fmt: skip
    assert emulator.requests[-1].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Its population?"},
    ]
    assert second.json()["response"] == "About 2 million."
    third = http.post("/api/generate", json={"model": "mistral", "prompt": "More?", "context": second.json()["context"],
                                             "stream": False, "options": {"num_predict": 1}})  # fmt: skip
    assert [m["content"] for m in emulator.requests[-1].body["messages"]] == [
        "Capital of France?", "Paris.", "Its population?", "About 2 million.", "More?"]  # fmt: skip
    assert third.status_code == 200


def test_raw_generate_returns_no_context_and_a_foreign_context_is_refused(http: httpx.Client) -> None:
    raw = http.post("/api/generate", json={"model": "mistral", "prompt": "x", "raw": True, "stream": False})
    assert "context" not in raw.json()
    foreign = http.post("/api/generate", json={"model": "mistral", "prompt": "x", "context": [128000, 9707]})
    assert foreign.status_code == 400
    assert foreign.json() == {"error": "context was not returned by this server: send the earlier turns as "
                                       "/api/chat messages"}  # fmt: skip


def test_think_on_a_model_that_cannot_think_is_ollamas_400(http: httpx.Client, emulator: Emulator) -> None:
    sent = len(emulator.requests)
    for route, body in (("/api/chat", {"messages": HI}), ("/api/generate", {"prompt": "x"})):
        answer = http.post(route, json={"model": "mistral", **body, "think": True})
        assert (answer.status_code, answer.json()) == (400, {"error": '"mistral" does not support thinking'})
    assert http.post("/api/chat", json={"model": "mistral", "messages": HI, "think": False}).status_code == 200
    assert [r.path for r in emulator.requests[sent:] if r.path != "/v1/models"] == ["/v1/chat/completions"]


def test_format_json_and_think_levels(http: httpx.Client, emulator: Emulator) -> None:
    body = {"model": "qwen/qwen3-4b", "prompt": "x", "stream": False, "format": "json", "think": "max"}
    http.post("/api/generate", json=body)
    sent = emulator.requests[-1].body
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["enable_thinking"], sent["reasoning_effort"]) == (True, "high")


@pytest.mark.parametrize("keep_alive", [0, 0.0, "0", "0s"])
def test_keep_alive_zero_with_empty_prompt_unloads(http: httpx.Client, emulator: Emulator, keep_alive: object) -> None:
    response = http.post("/api/generate", json={"model": "mistral", "keep_alive": keep_alive})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert (body["response"], body["done"], body["done_reason"]) == ("", True, "unload")
    assert emulator.model("mistral-7b").status == "unloaded"


def test_keep_alive_zero_after_a_generation_unloads_once_done(http: httpx.Client, emulator: Emulator) -> None:
    body = {"model": "mistral", "messages": HI, "stream": False, "keep_alive": "0m"}
    assert http.post("/api/chat", json=body).json()["message"]["content"] == "Hello from the emulator."
    # Like Ollama, the answer goes out first and the unload follows it.
    for _ in range(200):
        if emulator.model("mistral-7b").status == "unloaded":
            break
        time.sleep(0.01)
    assert [r.path for r in emulator.requests[-2:]] == ["/v1/chat/completions", "/v1/models/unload"]


def test_request_to_an_unloaded_model_measures_its_load(http: httpx.Client, emulator: Emulator) -> None:
    emulator.model("Qwen/Qwen3-4B").load_delay = 0.05
    body = http.post("/api/chat", json={"model": "qwen/qwen3-4b", "messages": HI, "stream": False}).json()
    assert body["load_duration"] >= 50_000_000
    assert [r.path for r in emulator.requests[-2:]] == ["/v1/models/reload", "/v1/chat/completions"]


def test_error_mid_stream_is_a_final_error_line_without_done(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c", error_after=1, error_message="out of memory"))
    response = http.post("/api/generate", json={"model": "mistral", "prompt": "x"})
    assert response.status_code == 200
    lines = _lines(response)
    assert lines[-1] == {"error": "mistral.rs: out of memory"}
    assert not any(line.get("done") for line in lines)


def test_non_streamed_upstream_failure_keeps_its_status(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c", error_after=1, error_message="out of memory"))
    response = http.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False})
    assert (response.status_code, response.json()) == (502, {"error": "mistral.rs error: out of memory"})


def test_pull_streams_success(http: httpx.Client) -> None:
    response = http.post("/api/pull", json={"model": "mistral"})
    assert response.headers["content-type"] == "application/x-ndjson"
    assert _lines(response) == [{"status": "pulling manifest"}, {"status": "success"}]


@pytest.fixture
def dead_upstream() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _proxy_for(url: str, **settings: object) -> Iterator[httpx.Client]:
    with serve_in_thread(create_app(Settings(mistral_url=url, **settings))) as server:  # type: ignore[arg-type]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client


def test_unreachable_upstream_is_502() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()  # nothing listens there now
    for http in _proxy_for(url):
        response = http.post("/api/chat", json={"model": "mistral", "messages": HI})
        assert (response.status_code, response.json()) == (502, {"error": f"could not connect to mistral.rs at {url}"})


def test_upstream_that_never_answers_is_504(dead_upstream: str) -> None:
    for http in _proxy_for(dead_upstream, request_timeout=0.3):
        response = http.get("/api/tags")
        assert (response.status_code, response.json()) == (504, {"error": "mistral.rs did not answer in time"})


def test_cors_only_for_configured_origins(upstream: Server) -> None:
    for http in _proxy_for(upstream.url, cors_allowed_origins=("http://ui.example",)):
        allowed = http.get("/api/version", headers={"origin": "http://ui.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://ui.example"
        other = http.get("/api/version", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_an_answer_given_before_the_body_was_read_closes_the_connection(http: httpx.Client) -> None:
    # Else a client may send its next request into the connection the server is closing (seen as a flaky
    # "Server disconnected without sending a response").
    for _ in range(20):
        refused = http.post("/v1/models/explode", content=b'{"model_id": "x"}' + b" " * 4000)
        assert (refused.status_code, refused.headers["connection"]) == (405, "close")
        answered = http.get("/api/version")
        assert answered.status_code == 200 and "connection" not in answered.headers


LN_10 = math.log(10)


def _emulated(position: int, scale: float = 1.0) -> float:
    """The emulator's logprob for the token at ``position`` (base 10, as the mistral.rs 0.8.1 it copies),
    as the proxy reports it with ``scale``."""
    return float(f"{-0.05 * (1 + position % 4):.9g}") * scale


@pytest.mark.parametrize("top", [-1, 21])
def test_top_logprobs_out_of_range_is_refused_before_anything_else(http: httpx.Client, top: int) -> None:
    for route in ("/api/chat", "/api/generate"):
        answer = http.post(route, json={"model": "", "top_logprobs": top})
        assert (answer.status_code, answer.json()) == (400, {"error": "top_logprobs must be between 0 and 20"})


def test_streamed_chat_carries_each_tokens_logprob_in_natural_log(
    settings: Settings, telemetry: Telemetry, emulator: Emulator
) -> None:
    emulator.script(Reply(content="Hi there, é"))
    body = {"model": "mistral", "messages": HI, "logprobs": True, "top_logprobs": 2}
    app = create_app(dataclasses.replace(settings, mistral_logprob_base=10.0), telemetry=telemetry)
    with serve_in_thread(app) as server:
        lines = _lines(httpx.post(f"{server.url}/api/chat", json=body))
    assert (emulator.requests[-1].body["logprobs"], emulator.requests[-1].body["top_logprobs"]) == (True, 2)
    tokens = [line for line in lines if not line["done"]]
    assert [line["message"]["content"] for line in tokens] == ["Hi", " there,", " é"]
    for position, line in enumerate(tokens):
        text = line["message"]["content"]
        natural = _emulated(position, LN_10)
        assert line["logprobs"] == [{
            "token": text, "logprob": pytest.approx(natural), "bytes": list(text.encode()),
            "top_logprobs": [
                {"token": text, "logprob": pytest.approx(natural), "bytes": list(text.encode())},
                {"token": " alt1", "logprob": pytest.approx(natural - LN_10), "bytes": list(b" alt1")},
            ],
        }]  # fmt: skip
    assert "logprobs" not in lines[-1]


def test_a_whole_answer_joins_the_logprobs_as_the_server_reports_them_by_default(
    http: httpx.Client, emulator: Emulator
) -> None:
    emulator.script(Reply(content="one two three"))
    body = {"model": "mistral", "prompt": "count", "stream": False, "logprobs": True}
    answer = http.post("/api/generate", json=body).json()
    assert emulator.requests[-1].body["top_logprobs"] == 0
    assert [(p["token"], p["bytes"]) for p in answer["logprobs"]] == [
        ("one", list(b"one")), (" two", list(b" two")), (" three", list(b" three"))]  # fmt: skip
    assert [p["logprob"] for p in answer["logprobs"]] == pytest.approx([_emulated(i) for i in range(3)])
    assert all(set(p) == {"token", "logprob", "bytes"} for p in answer["logprobs"])


def test_logprobs_are_only_sent_when_asked(http: httpx.Client, emulator: Emulator) -> None:
    body = {"model": "mistral", "messages": HI, "stream": False, "top_logprobs": 5}
    answer = http.post("/api/chat", json=body).json()
    assert "logprobs" not in answer
    assert "logprobs" not in emulator.requests[-1].body and "top_logprobs" not in emulator.requests[-1].body


def test_raw_generate_asks_for_logprobs_the_completions_way(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b"))
    body = {"model": "mistral", "prompt": "x", "raw": True, "logprobs": True, "top_logprobs": 3}
    lines = _lines(http.post("/api/generate", json=body))
    assert emulator.requests[-1].body["logprobs"] == 3
    assert [[t["token"] for t in line["logprobs"][0]["top_logprobs"]] for line in lines[:-1]] == [
        ["a", " alt1", " alt2"], [" b", " alt1", " alt2"]]  # fmt: skip


@pytest.mark.parametrize(
    ("dimensions", "error"),
    [
        ("0", "dimensions must be a positive number"),
        ("9223372036854775808", "invalid request: Expected `int` <= 9223372036854775807 - at `$.dimensions`"),
        ("1e23", "invalid request: Expected `int | null`, got `float` - at `$.dimensions`"),
    ],
)
def test_embed_dimensions_are_a_positive_int64(http: httpx.Client, dimensions: str, error: str) -> None:
    body = b'{"model": "mistral-7b", "input": "a", "dimensions": ' + dimensions.encode() + b"}"
    response = http.post("/api/embed", content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.json()) == (400, {"error": error})
