"""Tests of the mistral.rs emulator itself, over real HTTP (Hypercorn on loopback + httpx)."""

from __future__ import annotations

import base64
import json
import re
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.emulator import Emulator, ModelEntry, Reply, _f32, _tokens
from tests.servers import Server, serve_in_thread
from tests.waiting import eventually

HI = {"model": "default", "messages": [{"role": "user", "content": "hi there"}]}
# prompt 2 words + 3 = 5 tokens (10 ms), completion 4 tokens (40 ms) for the default reply.
USAGE_5_4 = (
    '{"completion_tokens":4,"prompt_tokens":5,"total_tokens":9,"avg_tok_per_sec":180.0,'
    '"avg_prompt_tok_per_sec":500.0,"avg_compl_tok_per_sec":100.0,"total_time_sec":0.05,'
    '"total_prompt_time_sec":0.01,"total_completion_time_sec":0.04}'
)


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def server(emulator: Emulator) -> Iterator[Server]:
    with serve_in_thread(emulator.app) as srv:  # type: ignore[arg-type]
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def _keys(raw: bytes) -> list[Any]:
    """Every object's keys in wire order, depth-first."""
    found: list[Any] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found.append([k for k, _ in pairs])
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return found


def _chat_chunk(created: int, delta: str, finish: str = "null", usage: str = "null", rid: str = "0") -> str:
    return (
        f'data: {{"id":"{rid}","choices":[{{"finish_reason":{finish},"index":0,"delta":{delta},'
        f'"logprobs":null}}],"created":{created},"model":"mistral-7b","system_fingerprint":"local",'
        f'"object":"chat.completion.chunk","usage":{usage}}}\n\n'
    )


def _content(text: str) -> str:
    return f'{{"content":{json.dumps(text)},"role":"assistant","tool_calls":null}}'


def _created(body: bytes) -> int:
    match = re.search(rb'"created":(\d+)', body)
    assert match is not None
    return int(match.group(1))


# ---------------------------------------------------------------------------- helpers


def test_tokens_keep_leading_space_and_round_trip() -> None:
    assert _tokens("Hello from the") == ["Hello", " from", " the"]
    for text in ["Hello from the emulator.", " a  b\n\nc  ", "", "x"]:
        assert "".join(_tokens(text)) == text


def test_f32_prints_like_serde() -> None:
    assert json.dumps(_f32(0.288)) == "0.288"
    assert json.dumps(_f32(1500.0)) == "1500.0"
    assert json.dumps(_f32(1 / 3)) == "0.33333334"


# ---------------------------------------------------------------------------- chat


def test_chat_non_stream_exact_bytes(client: httpx.Client) -> None:
    before = int(time.time())
    r = client.post("/v1/chat/completions", json=HI)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    created = _created(r.content)
    assert before <= created <= int(time.time())
    expected = (
        '{"id":"0","choices":[{"finish_reason":"stop","index":0,"message":{"content":'
        '"Hello from the emulator.","role":"assistant","tool_calls":null},"logprobs":null}],'
        f'"created":{created},"model":"mistral-7b","system_fingerprint":"local",'
        f'"object":"chat.completion","usage":{USAGE_5_4}}}'
    )
    assert r.text == expected
    assert _keys(r.content)[-1] == [
        "id",
        "choices",
        "created",
        "model",
        "system_fingerprint",
        "object",
        "usage",
    ]


def test_chat_ids_count_up_and_model_is_pipeline_name(client: httpx.Client) -> None:
    ids = [client.post("/v1/chat/completions", json=HI).json()["id"] for _ in range(3)]
    assert ids == ["0", "1", "2"]
    body = client.post("/v1/chat/completions", json={**HI, "model": "mistral-7b"}).json()
    assert body["model"] == "mistral-7b"


def test_chat_stream_exact_bytes(client: httpx.Client, emulator: Emulator) -> None:
    with client.stream("POST", "/v1/chat/completions", json={**HI, "stream": True}) as r:
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["cache-control"] == "no-cache"
        events = list(r.iter_raw())
    body = b"".join(events)
    c = _created(body)
    expected = (
        _chat_chunk(c, _content("Hello"))
        + _chat_chunk(c, _content(" from"))
        + _chat_chunk(c, _content(" the"))
        + _chat_chunk(c, _content(" emulator."), '"stop"', USAGE_5_4)
        + "data: [DONE]\n\n"
    )
    assert body.decode() == expected
    assert emulator.active_streams == 0 and emulator.disconnects == []


def test_chat_stream_keepalive_comments() -> None:
    emulator = Emulator(keepalive_every=2)
    with serve_in_thread(emulator.app) as srv:  # type: ignore[arg-type]
        with httpx.Client(base_url=srv.url) as client:
            body = client.post("/v1/chat/completions", json={**HI, "stream": True}).text
    parts = body.split("\n\n")
    assert [p for p in parts if p.startswith(":")] == [":", ":"]
    # the comment comes right before chunks 2 and 4
    assert parts[1] == ":" and '" from"' in parts[2] and parts[4] == ":" and '"stop"' in parts[5]


def test_chat_reasoning(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="Yes.", reasoning="Let me think"), Reply(content="Yes.", reasoning="Hmm ok"))
    r = client.post("/v1/chat/completions", json=HI)
    message = r.json()["choices"][0]["message"]
    assert message == {
        "content": "Yes.",
        "role": "assistant",
        "tool_calls": None,
        "reasoning_content": "Let me think",
    }
    assert ["content", "role", "tool_calls", "reasoning_content"] in _keys(r.content)
    assert r.json()["usage"]["completion_tokens"] == 4
    body = client.post("/v1/chat/completions", json={**HI, "stream": True}).text
    c = _created(body.encode())
    reasoning = '{{"content":null,"role":"assistant","tool_calls":null,"reasoning_content":"{}"}}'
    assert body.startswith(
        _chat_chunk(c, reasoning.format("Hmm"), rid="1") + _chat_chunk(c, reasoning.format(" ok"), rid="1")
    )
    final = body.split("\n\n")[2]
    assert '"delta":{"content":"Yes.","role":"assistant","tool_calls":null}' in final
    assert '"finish_reason":"stop"' in final and '"completion_tokens":3' in final


def test_chat_tool_calls(client: httpx.Client, emulator: Emulator) -> None:
    call = ("get_weather", '{"city": "Paris"}')
    emulator.script(Reply(tool_calls=[call]), Reply(tool_calls=[call]))
    r = client.post("/v1/chat/completions", json=HI)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (tc,) = choice["message"]["tool_calls"]
    assert re.fullmatch(r"call-[0-9a-f-]{36}", tc["id"])
    assert tc == {
        "index": 0,
        "id": tc["id"],
        "type": "function",
        "function": {"name": call[0], "arguments": call[1]},
    }
    assert ["index", "id", "type", "function"] in _keys(r.content)
    assert r.json()["usage"]["completion_tokens"] == 1 + 2  # name + arguments tokens
    events = client.post("/v1/chat/completions", json={**HI, "stream": True}).text.split("\n\n")
    assert events[1:] == ["data: [DONE]", ""]
    chunk = json.loads(events[0].removeprefix("data: "))
    assert chunk["choices"][0]["finish_reason"] == "tool_calls"
    assert chunk["choices"][0]["delta"]["content"] is None
    assert chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert chunk["usage"]["completion_tokens"] == 3


def test_max_tokens_truncates_with_length(client: httpx.Client) -> None:
    body = client.post("/v1/chat/completions", json={**HI, "max_tokens": 2}).json()
    assert body["choices"][0]["message"]["content"] == "Hello from"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2
    alias = client.post("/v1/chat/completions", json={**HI, "max_completion_tokens": 3}).json()
    assert alias["choices"][0]["message"]["content"] == "Hello from the"
    enough = client.post("/v1/chat/completions", json={**HI, "max_tokens": 4}).json()
    assert enough["choices"][0]["finish_reason"] == "stop"


def test_scripted_replies_in_order_then_default(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="one"), Reply(content="two", finish_reason="canceled"))
    got = [client.post("/v1/chat/completions", json=HI).json()["choices"][0] for _ in range(3)]
    assert [c["message"]["content"] for c in got] == ["one", "two", "Hello from the emulator."]
    assert [c["finish_reason"] for c in got] == ["stop", "canceled", "stop"]


def test_a_reply_chosen_from_the_body_comes_before_the_script(client: httpx.Client, emulator: Emulator) -> None:
    def choose(body: dict[str, Any]) -> Reply | None:
        asked = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        return Reply(content=f"chosen for {asked}") if asked.startswith("pick") else None

    emulator.script(Reply(content="scripted"))
    emulator.reply_for = choose
    got = [
        client.post("/v1/chat/completions", json={**HI, "messages": [{"role": "user", "content": text}]}).json()
        for text in ("pick one", "other", "other")
    ]
    answers = [each["choices"][0]["message"]["content"] for each in got]
    assert answers == ["chosen for pick one", "scripted", "Hello from the emulator."]
    completion = client.post("/v1/completions", json={"prompt": "pick two"}).json()
    assert completion["choices"][0]["text"] == "chosen for pick two"


def test_prompt_tokens_formula(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "one two three"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]
    body = client.post("/v1/chat/completions", json={"messages": messages}).json()
    assert body["usage"]["prompt_tokens"] == 2 + 3 + 0 + 3 * 3


def test_stream_error_event(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(error_after=2, error_message="boom"))
    r = client.post("/v1/chat/completions", json={**HI, "stream": True})
    assert r.status_code == 200
    c = _created(r.content)
    assert r.text == (
        _chat_chunk(c, _content("Hello"))
        + _chat_chunk(c, _content(" from"))
        + 'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n'
        + "data: [DONE]\n\n"
    )


def test_non_stream_model_error(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(error_after=1))
    r = client.post("/v1/chat/completions", json=HI)
    assert (r.status_code, r.text) == (500, '{"message":"model failed"}')


# ---------------------------------------------------------------------------- errors


def test_unknown_model(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={**HI, "model": "llama3"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.text == (
        '{"message":"Requested model \'llama3\' is not available. Available models: '
        "mistral-7b, Qwen/Qwen3-4B. Use 'default' to use the default model.\"}"
    )


def test_max_tokens_zero_makes_one_token_as_mistralrs_0_8_1_does(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={**HI, "max_tokens": 0})
    assert r.status_code == 200
    assert (r.json()["usage"]["completion_tokens"], r.json()["choices"][0]["finish_reason"]) == (1, "length")


def test_typed_fields_are_checked_as_serde_does(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", content=b'{"messages": [], "temperature": "hot"}',
                    headers={"content-type": "application/json"})  # fmt: skip
    assert (r.status_code, r.text) == (
        422,
        "Failed to deserialize the JSON body into the target type: "
        'temperature: invalid type: string "hot", expected f64 at line 1 column 37',
    )
    r = client.post("/v1/chat/completions", content=b'{"messages": [], "max_tokens": -1}',
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.text.endswith("max_tokens: invalid value: integer `-1`, expected usize at line 1 column 33")


def test_malformed_json(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    r = client.post("/v1/chat/completions", content=b'{"model":', headers=headers)
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    prefix = "Failed to parse the request body as JSON: "
    assert r.text == prefix + "EOF while parsing an object at line 1 column 9"
    r = client.post("/v1/chat/completions", content=b"{}x", headers=headers)
    assert r.text == prefix + "trailing characters at line 1 column 3"


def test_missing_field(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={"model": "default"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == (
        "Failed to deserialize the JSON body into the target type: missing field `messages` at line 1 column 19"
    )
    r = client.post("/v1/completions", json={})
    assert r.status_code == 422 and "missing field `prompt`" in r.text


def test_wrong_content_type(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", content=json.dumps(HI), headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.text == "Expected request with `Content-Type: application/json`"
    r = client.post("/v1/chat/completions", content=json.dumps(HI))
    assert r.status_code == 415


def test_reloading_model_and_implicit_reload(client: httpx.Client, emulator: Emulator) -> None:
    emulator.model("mistral-7b").status = "reloading"
    r = client.post("/v1/chat/completions", json=HI)
    assert (r.status_code, r.text) == (500, '{"message":"model `mistral-7b` is being reloaded"}')
    assert emulator.model("Qwen/Qwen3-4B").status == "unloaded"
    r = client.post("/v1/chat/completions", json={**HI, "model": "Qwen/Qwen3-4B"})
    assert r.status_code == 200 and r.json()["model"] == "Qwen/Qwen3-4B"
    assert emulator.model("Qwen/Qwen3-4B").status == "loaded"


def test_concurrent_request_during_slow_load() -> None:
    emulator = Emulator([ModelEntry("slow", "unloaded", load_delay=0.5)])
    with serve_in_thread(emulator.app) as srv:  # type: ignore[arg-type]
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            results: list[int] = []
            first = threading.Thread(
                target=lambda: results.append(client.post("/v1/chat/completions", json=HI).status_code)
            )
            first.start()
            time.sleep(0.2)
            second = client.post("/v1/chat/completions", json=HI)
            first.join()
    assert (second.status_code, second.json()) == (500, {"message": "model `slow` is being reloaded"})
    assert results == [200] and emulator.model("slow").status == "loaded"


def test_unknown_route_and_method(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert (r.status_code, r.content) == (404, b"")
    r = client.get("/v1/chat/completions")
    assert (r.status_code, r.content) == (405, b"")


def test_x_request_id(client: httpx.Client) -> None:
    assert client.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    for r in (client.get("/health"), client.post("/v1/chat/completions", json={}), client.get("/nope")):
        assert re.fullmatch(r"req_[0-9a-f]{32}", r.headers["x-request-id"])
    streamed = client.post("/v1/chat/completions", json={**HI, "stream": True}, headers={"x-request-id": "s1"})
    assert streamed.headers["x-request-id"] == "s1"


def test_requests_are_recorded(client: httpx.Client, emulator: Emulator) -> None:
    client.post("/v1/chat/completions", json=HI, headers={"X-Custom": "yes"})
    client.post("/v1/chat/completions", content=b"not json", headers={"content-type": "application/json"})
    client.get("/v1/models")
    first, second, third = emulator.requests
    assert (first.method, first.path, first.body) == ("POST", "/v1/chat/completions", HI)
    assert first.headers["x-custom"] == "yes" and first.headers["content-type"] == "application/json"
    assert second.body is None and second.method == "POST"
    assert (third.method, third.path, third.body) == ("GET", "/v1/models", None)


# ---------------------------------------------------------------------------- completions, embeddings


def test_completions_non_stream(client: httpx.Client) -> None:
    r = client.post("/v1/completions", json={"model": "default", "prompt": "The quick brown fox"})
    c = _created(r.content)
    assert r.text == (
        '{"id":"0","choices":[{"finish_reason":"stop","index":0,"text":"Hello from the emulator.",'
        f'"logprobs":null}}],"created":{c},"model":"mistral-7b","system_fingerprint":"local",'
        '"object":"text_completion","usage":{"completion_tokens":4,"prompt_tokens":4,"total_tokens":8,'
        '"avg_tok_per_sec":160.0,"avg_prompt_tok_per_sec":400.0,"avg_compl_tok_per_sec":100.0,'
        '"total_time_sec":0.05,"total_prompt_time_sec":0.01,"total_completion_time_sec":0.04}}'
    )


def test_completions_stream_has_no_usage(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content=" jumps over"))
    r = client.post("/v1/completions", json={"prompt": "The fox", "stream": True})
    c = _created(r.content)
    head = '{"id":"0","choices":[{"text":'
    tail = f'"created":{c},"model":"mistral-7b","system_fingerprint":"local","object":"text_completion"}}'
    assert r.text == (
        f'data: {head}" jumps","index":0,"logprobs":null,"finish_reason":null}}],{tail}\n\n'
        f'data: {head}" over","index":0,"logprobs":null,"finish_reason":"stop"}}],{tail}\n\n'
        "data: [DONE]\n\n"
    )


def test_completions_prompt_must_be_string(client: httpx.Client) -> None:
    r = client.post("/v1/completions", json={"prompt": ["a"]})
    assert r.status_code == 422 and "prompt: invalid type: sequence, expected a string" in r.text


def test_embeddings(client: httpx.Client) -> None:
    r = client.post("/v1/embeddings", json={"model": "default", "input": ["hello world", "bye"]})
    body = r.json()
    assert list(body) == ["object", "data", "model", "usage"]
    assert body["object"] == "list" and body["model"] == "default"
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [list(d) for d in body["data"]] == [["object", "embedding", "index"]] * 2
    assert [d["index"] for d in body["data"]] == [0, 1]
    vectors = [d["embedding"] for d in body["data"]]
    assert all(len(v) == 8 and all(-1.0 <= x <= 1.0 for x in v) for v in vectors)
    assert vectors[0] != vectors[1]
    again = client.post("/v1/embeddings", json={"model": "mistral-7b", "input": "hello world"}).json()
    assert again["data"][0]["embedding"] == vectors[0] and again["model"] == "mistral-7b"
    b64 = client.post("/v1/embeddings", json={"input": "hello world", "encoding_format": "base64"}).json()
    decoded = struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"]))
    assert [_f32(x) for x in decoded] == vectors[0]


# ---------------------------------------------------------------------------- models, misc


def test_models_list(client: httpx.Client, emulator: Emulator) -> None:
    r = client.get("/v1/models")
    c = emulator.created
    card = '{{"id":"{0}","object":"model","created":' + str(c) + ',"owned_by":"local"'
    assert r.text == (
        '{"object":"list","data":['
        + card.format("default")
        + "},"
        + card.format("mistral-7b")
        + ',"status":"loaded"},'
        + card.format("Qwen/Qwen3-4B")
        + ',"status":"unloaded"}]}'
    )


def test_model_management(client: httpx.Client, emulator: Emulator) -> None:
    def call(action: str, model_id: str) -> Any:
        r = client.post(f"/v1/models/{action}", json={"model_id": model_id})
        assert r.status_code == 200
        return r.json()

    assert call("status", "mistral-7b") == {"model_id": "mistral-7b", "status": "loaded"}
    assert call("unload", "mistral-7b") == {"model_id": "mistral-7b", "status": "unloaded"}
    assert emulator.model("mistral-7b").status == "unloaded"
    assert call("status", "mistral-7b")["status"] == "unloaded"
    assert call("reload", "mistral-7b") == {"model_id": "mistral-7b", "status": "loaded"}
    for action in ("status", "unload", "reload"):
        assert call(action, "nope") == {"model_id": "nope", "status": "not_found"}
    assert client.post("/v1/models/status", json={}).status_code == 422


def test_health_and_metrics(client: httpx.Client) -> None:
    for path in ("/health", "/"):
        r = client.get(path)
        assert (r.status_code, r.text, r.headers["content-type"]) == (200, "OK", "text/plain; charset=utf-8")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "\nmistralrs_sequences_running 0\n" in metrics.text
    assert "# TYPE mistralrs_tokens_processed_total counter" in metrics.text


# ---------------------------------------------------------------------------- disconnects


def test_client_disconnect_is_noticed(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c d e f g h i j", delay=0.3))
    with client.stream("POST", "/v1/chat/completions", json={**HI, "stream": True}) as r:
        chunks = r.iter_raw()  # keep a reference: a dropped iterator closes the connection at once
        assert b'"content":"a"' in next(chunks)
        assert emulator.active_streams == 1
    closed_at = time.monotonic()
    deadline = closed_at + 2
    while not emulator.disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(emulator.disconnects) == 1
    assert emulator.disconnects[0] - closed_at < 0.2  # noticed while sleeping, not at the next chunk
    assert emulator.active_streams == 0


def test_non_stream_delay(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b", delay=0.1))
    started = time.monotonic()
    client.post("/v1/chat/completions", json=HI)
    assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------------------- fault injection


STREAM = {**HI, "stream": True}


def _first_two_chunks(body: bytes) -> str:
    c = _created(body)
    return _chat_chunk(c, _content("Hello")) + _chat_chunk(c, _content(" from"))


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (500, b'{"message":"model failed"}', "application/json"),
        (422, b'{"message":"Prompt sequence length is greater than 4096"}', "application/json"),
        (503, b'{"message": "server is restarting"}', "application/json"),
        (503, b"Service Unavailable", "text/plain; charset=utf-8"),
        (502, b"", "text/plain; charset=utf-8"),
    ],
)
def test_status_reply(client: httpx.Client, emulator: Emulator, status: int, body: bytes, content_type: str) -> None:
    emulator.script(Reply(status=status, body=body), Reply(status=status, body=body))
    for request in (HI, STREAM):
        r = client.post("/v1/chat/completions", json=request)
        assert (r.status_code, r.content, r.headers["content-type"]) == (status, body, content_type)
        assert r.headers["content-length"] == str(len(body))
    assert emulator.next_id == 0  # like any rejected request, no sequence id is taken
    assert client.post("/v1/chat/completions", json=HI).json()["id"] == "0"


def test_status_reply_default_body_and_completions(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(status=500, error_message="CUDA out of memory"), Reply(status=503))
    r = client.post("/v1/completions", json={"prompt": "hi"})
    assert (r.status_code, r.text) == (500, '{"message":"CUDA out of memory"}')
    r = client.post("/v1/completions", json={"prompt": "hi", "stream": True})
    assert (r.status_code, r.text) == (503, '{"message":"model failed"}')
    assert r.headers["content-type"] == "application/json"
    assert emulator.active_streams == 0


@pytest.mark.parametrize("after", [0, 2, 99])
def test_stream_malformed_after(client: httpx.Client, emulator: Emulator, after: int) -> None:
    emulator.script(Reply(malformed_after=after))
    r = client.post("/v1/chat/completions", json=STREAM)
    assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
    good, tail = r.text.split("data: {not json\n\n")
    assert tail == "data: [DONE]\n\n"
    assert good.count("data: ") == min(after, 4)
    if after == 2:
        assert good == _first_two_chunks(r.content)
    assert emulator.active_streams == 0 and emulator.disconnects == []
    assert client.post("/v1/chat/completions", json=STREAM).text.count("data: ") == 5  # back to normal


def test_completions_stream_malformed(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c", malformed_after=1))
    events = client.post("/v1/completions", json={"prompt": "x", "stream": True}).text.split("\n\n")
    assert '"text":"a"' in events[0]
    assert events[1:] == ["data: {not json", "data: [DONE]", ""]


def test_non_stream_malformed(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(malformed_after=0))
    r = client.post("/v1/chat/completions", json=HI)
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"{not json", "application/json")
    with pytest.raises(json.JSONDecodeError):
        r.json()


@pytest.mark.parametrize("keepalive_every", [0, 1])
def test_stream_reset_after(keepalive_every: int) -> None:
    emulator = Emulator(keepalive_every=keepalive_every)
    emulator.script(Reply(reset_after=2))
    with serve_in_thread(emulator.app) as srv:  # type: ignore[arg-type]
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            received: list[bytes] = []
            with client.stream("POST", "/v1/chat/completions", json=STREAM) as r:
                assert r.status_code == 200
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                    for chunk in r.iter_raw():
                        received.append(chunk)
            body = b"".join(received)
            c = _created(body)
            keepalive = ":\n\n" if keepalive_every else ""
            hello, from_ = _chat_chunk(c, _content("Hello")), _chat_chunk(c, _content(" from"))
            assert body.decode() == keepalive + hello + keepalive + from_
            assert emulator.active_streams == 0 and emulator.disconnects == []
            # the emulator (and the client's pool) carry on with a new connection
            after = client.post("/v1/chat/completions", json=STREAM)
            assert after.status_code == 200 and after.text.endswith("data: [DONE]\n\n")
            assert after.text.count('"id":"1"') == 4


def test_stream_reset_before_first_chunk(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(reset_after=0))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json=STREAM)
    assert emulator.active_streams == 0
    assert client.get("/health").text == "OK"


def test_non_stream_reset(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(reset_after=0))
    with client.stream("POST", "/v1/chat/completions", json=HI) as r:
        assert r.status_code == 200 and int(r.headers["content-length"]) > 0
        with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection"):
            r.read()
    assert client.post("/v1/chat/completions", json=HI).json()["id"] == "1"


def test_stall_with_keepalives_counts_as_life(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(stall_after=2, stall_for=0.55, stall_keepalive=True))
    arrivals: list[tuple[float, bytes]] = []
    timeout = httpx.Timeout(5, read=0.3)  # longer than the keep-alive interval, shorter than the stall
    with client.stream("POST", "/v1/chat/completions", json=STREAM, timeout=timeout) as r:
        started = time.monotonic()
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic() - started, chunk))
    body = b"".join(chunk for _, chunk in arrivals)
    parts = body.decode().split("\n\n")
    comments = [i for i, p in enumerate(parts) if p == ":"]
    assert 4 <= len(comments) <= 5  # one every 0.1 s of the 0.55 s stall
    assert comments == list(range(2, 2 + len(comments)))  # all between data events 2 and 3
    data = "\n\n".join(p for p in parts if p != ":")
    c = _created(body)
    assert data == (
        _chat_chunk(c, _content("Hello"))
        + _chat_chunk(c, _content(" from"))
        + _chat_chunk(c, _content(" the"))
        + _chat_chunk(c, _content(" emulator."), '"stop"', USAGE_5_4)
        + "data: [DONE]\n\n"
    )
    keepalive_times = [t for t, chunk in arrivals if chunk == b":\n\n"]
    assert len(keepalive_times) == len(comments)  # each comment arrived on its own, as it was sent
    gaps = [b - a for a, b in zip(keepalive_times, keepalive_times[1:], strict=False)]
    assert all(0.05 < gap < 0.25 for gap in gaps)
    assert arrivals[-1][0] >= 0.5
    assert emulator.active_streams == 0 and emulator.disconnects == []


def test_stall_without_keepalives_is_silent(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(stall_after=1, stall_for=0.4), Reply(stall_after=1))
    body = client.post("/v1/chat/completions", json=STREAM).text
    assert ":\n\n" not in body and body.count("data: ") == 5
    received: list[bytes] = []
    with pytest.raises(httpx.ReadTimeout):
        with client.stream("POST", "/v1/chat/completions", json=STREAM, timeout=httpx.Timeout(5, read=0.3)) as r:
            for chunk in r.iter_raw():
                received.append(chunk)
    assert b"".join(received).count(b"data: ") == 1
    eventually(lambda: emulator.disconnects)
    assert len(emulator.disconnects) == 1 and emulator.active_streams == 0


@pytest.mark.parametrize("keepalive", [False, True])
def test_stalled_stream_disconnect_is_recorded_fast(client: httpx.Client, emulator: Emulator, keepalive: bool) -> None:
    emulator.script(Reply(stall_after=1, stall_keepalive=keepalive))  # stall_for defaults to an hour
    with client.stream("POST", "/v1/chat/completions", json=STREAM) as r:
        chunks = r.iter_raw()
        assert b'"content":"Hello"' in next(chunks)
        time.sleep(0.25)
        assert emulator.active_streams == 1
    closed_at = time.monotonic()
    eventually(lambda: emulator.disconnects)
    assert len(emulator.disconnects) == 1
    assert emulator.disconnects[0] - closed_at < 0.5
    eventually(lambda: emulator.active_streams == 0)
    assert emulator.active_streams == 0
    assert client.post("/v1/chat/completions", json=HI).status_code == 200


def test_non_stream_stall_after_headers(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(stall_after=0, stall_for=0.3), Reply(stall_after=0))
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=HI) as r:
        headers_at = time.monotonic() - started
        body = r.read()
    assert headers_at < 0.2 and time.monotonic() - started >= 0.3
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello from the emulator."
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=HI, timeout=httpx.Timeout(5, read=0.2))
    eventually(lambda: emulator.disconnects)
    assert len(emulator.disconnects) == 1 and emulator.active_streams == 0


@pytest.mark.parametrize("request_body", [HI, STREAM])
def test_first_byte_delay(client: httpx.Client, emulator: Emulator, request_body: dict[str, Any]) -> None:
    emulator.script(Reply(first_byte_delay=0.3, delay=0.05))
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=request_body) as r:
        assert time.monotonic() - started >= 0.3 and r.status_code == 200
        chunks = r.iter_raw()
        body = next(chunks)
        assert emulator.active_streams == (1 if request_body is STREAM else 0)  # a stream counts once started
        body += b"".join(chunks)
    assert b'"id":"0"' in body and b"emulator." in body
    assert emulator.active_streams == 0 and emulator.disconnects == []


def test_first_byte_delay_ends_on_disconnect(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(first_byte_delay=3600), Reply(first_byte_delay=3600, status=503))
    for request_body in (STREAM, HI):
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/chat/completions", json=request_body, timeout=httpx.Timeout(5, read=0.2))
        closed_at = time.monotonic()
        eventually(lambda: emulator.disconnects)
        assert emulator.disconnects and emulator.disconnects[-1] - closed_at < 0.5
        emulator.disconnects.clear()
    assert emulator.active_streams == 0
    assert client.post("/v1/chat/completions", json=HI).json()["id"] == "1"  # the first one took id 0


def test_first_byte_delay_with_status(client: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(first_byte_delay=0.2, status=503, body=b'{"message":"busy"}'))
    started = time.monotonic()
    r = client.post("/v1/chat/completions", json=HI)
    assert time.monotonic() - started >= 0.2
    assert (r.status_code, r.text) == (503, '{"message":"busy"}')


def test_fail_next_gets(client: httpx.Client, emulator: Emulator) -> None:
    emulator.fail_next_gets(3)
    assert client.post("/v1/chat/completions", json=HI).status_code == 200  # not a GET: unaffected
    assert client.get("/").status_code == 200  # only /v1/models and /health fail
    got = [client.get(path) for path in ("/v1/models", "/health", "/v1/models", "/v1/models", "/health")]
    assert [r.status_code for r in got] == [503, 503, 503, 200, 200]
    for r in got[:3]:
        assert r.text == '{"message":"Service Unavailable"}'
        assert r.headers["content-type"] == "application/json"
    assert got[3].json()["object"] == "list" and got[4].text == "OK"
    assert [(rec.method, rec.path) for rec in emulator.requests[2:]] == [
        ("GET", "/v1/models"),
        ("GET", "/health"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models"),
        ("GET", "/health"),
    ]
    emulator.fail_next_gets(1, status=500, message="engine is starting")
    emulator.fail_next_gets(1, status=502)
    first, second, third = (client.get("/health") for _ in range(3))
    assert (first.status_code, first.text) == (500, '{"message":"engine is starting"}')
    assert (second.status_code, second.text) == (502, '{"message":"Bad Gateway"}')
    assert (third.status_code, third.text) == (200, "OK")


def test_restart_resets_what_the_server_forgets(emulator: Emulator) -> None:
    with serve_in_thread(emulator.app) as srv:  # type: ignore[arg-type]
        port = srv.port
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            assert [client.post("/v1/chat/completions", json=HI).json()["id"] for _ in range(2)] == ["0", "1"]
            client.post("/v1/chat/completions", json={**HI, "model": "Qwen/Qwen3-4B"})
            client.post("/v1/models/unload", json={"model_id": "mistral-7b"})
    assert emulator.model("mistral-7b").status == "unloaded"
    assert emulator.model("Qwen/Qwen3-4B").status == "loaded"
    assert emulator.next_id == 3 and emulator.tokens_processed > 0
    emulator.restart()
    assert emulator.next_id == 0 and emulator.tokens_processed == 0
    assert emulator.model("mistral-7b").status == "loaded"
    assert emulator.model("Qwen/Qwen3-4B").status == "unloaded"
    with serve_in_thread(emulator.app, port=port) as srv:  # type: ignore[arg-type]
        assert srv.port == port
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            statuses = {m["id"]: m.get("status") for m in client.get("/v1/models").json()["data"]}
            assert statuses == {"default": None, "mistral-7b": "loaded", "Qwen/Qwen3-4B": "unloaded"}
            assert "\nmistralrs_tokens_processed_total 0\n" in client.get("/metrics").text
            assert client.post("/v1/chat/completions", json=HI).json()["id"] == "0"
    assert len(emulator.requests) == 4 + 3  # bookkeeping survives the restart
