"""``/v1/messages`` through the official ``anthropic`` SDK and raw HTTP, against the emulator: the request becomes an
Ollama chat, the answer an Anthropic message or its events, and every error Anthropic's error object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.main import create_app
from app.settings import Settings
from otel.setup import Telemetry
from tests.emulator import Emulator, Reply
from tests.otel.helpers import finished_spans, points, wait_idle
from tests.servers import Server, serve_in_thread
from tests.sse import chat_counts, named_events

HELLO = "Hello from the emulator."
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def sdk(proxy: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0) as client:
        yield client


def test_a_message_is_answered_as_the_ollama_chat_it_translates_to(
    sdk: anthropic.Anthropic, http: httpx.Client, emulator: Emulator
) -> None:
    # The SDK's 2.x releases no longer name the sampling fields (newer Claude models refuse them); other clients send
    # them, and Ollama reads them.
    sampling = {"temperature": 0.2, "top_p": 0.5, "top_k": 7}
    message = sdk.messages.create(model="mistral", max_tokens=64, messages=USER, system="Be brief.",
                                  stop_sequences=["END"], extra_body=sampling)  # fmt: skip
    sent = emulator.requests[-1].body
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert (sent["model"], sent["max_tokens"], sent["temperature"], sent["top_p"], sent["top_k"], sent["stop"]) == (
        "mistral-7b", 64, 0.2, 0.5, 7, ["END"])  # fmt: skip
    assert message.id.startswith("msg_") and len(message.id) == 28
    assert (message.type, message.role, message.model) == ("message", "assistant", "mistral")
    assert [(block.type, block.text) for block in message.content if block.type == "text"] == [("text", HELLO)]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    prompt, output = chat_counts(http, [{"role": "system", "content": "Be brief."}, *USER], num_predict=64)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (prompt, output)


def test_the_raw_answer_is_ollamas_shape(http: httpx.Client) -> None:
    response = http.post("/v1/messages", json={"model": "mistral", "max_tokens": 8, "messages": USER})
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json; charset=utf-8")
    answer = response.json()
    assert set(answer) == {"id", "type", "role", "model", "content", "stop_reason", "usage"}  # no null stop_sequence
    assert answer["content"] == [{"type": "text", "text": HELLO}]
    assert answer["stop_reason"] == "end_turn"


def test_a_system_prompt_in_blocks_and_a_length_stop(sdk: anthropic.Anthropic, emulator: Emulator) -> None:
    emulator.script(Reply(content="one two three", finish_reason="length"))
    system = [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]
    message = sdk.messages.create(model="mistral", max_tokens=3, messages=USER, system=system)  # type: ignore[arg-type]
    assert emulator.requests[-1].body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert message.stop_reason == "max_tokens"


def test_a_stream_is_anthropics_event_sequence(http: httpx.Client) -> None:
    body = {"model": "mistral", "max_tokens": 64, "messages": USER, "stream": True}
    response = http.post("/v1/messages", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = named_events(response.text)
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas > 1
    assert names == ["message_start", "content_block_start", *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert (start["role"], start["model"], start["content"], start["usage"]["output_tokens"]) == (
        "assistant", "mistral", [], 0)  # fmt: skip
    assert start["usage"]["input_tokens"] == 1  # Ollama's estimate: "user" and "hi" are 6 characters, a quarter
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == HELLO
    assert {data["delta"]["type"] for name, data in events if name == "content_block_delta"} == {"text_delta"}
    assert events[-3][1] == {"type": "content_block_stop", "index": 0}
    prompt, output = chat_counts(http, USER, num_predict=64)
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"input_tokens": prompt, "output_tokens": output}}  # fmt: skip


def test_the_sdk_streams_and_assembles_the_message(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model="mistral", max_tokens=64, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == HELLO
    assert [(block.type, block.text) for block in final.content if block.type == "text"] == [("text", HELLO)]
    assert final.stop_reason == "end_turn"


def test_thinking_streams_as_a_thinking_block_before_the_text(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="Paris.", reasoning="France's capital"))
    body = {"model": "mistral", "max_tokens": 64, "messages": USER, "stream": True}
    events = named_events(http.post("/v1/messages", json=body).text)
    blocks = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert blocks == [{"type": "thinking", "thinking": ""}, {"type": "text", "text": ""}]
    thought = "".join(d["delta"]["thinking"] for n, d in events if n == "content_block_delta" and d["index"] == 0)
    said = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["index"] == 1)
    assert (thought, said) == ("France's capital", "Paris.")
    assert [data["index"] for name, data in events if name == "content_block_stop"] == [0, 1]


def test_a_tool_round_trip(sdk: anthropic.Anthropic, emulator: Emulator) -> None:
    weather = {"name": "get_weather", "description": "The weather in a city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
    emulator.script(Reply(content="", tool_calls=[("get_weather", '{"city": "Paris"}')]))
    asked = sdk.messages.create(model="mistral", max_tokens=64, messages=USER, tools=[weather])
    sent = emulator.requests[-1].body
    function = {"name": "get_weather", "description": "The weather in a city", "parameters": weather["input_schema"]}
    assert sent["tools"] == [{"type": "function", "function": function}]
    assert asked.stop_reason == "tool_use"
    [use] = asked.content
    assert use.type == "tool_use"
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    assert use.id
    history = [*USER, {"role": "assistant", "content": [use.model_dump()]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"},
                                            {"type": "text", "text": "and?"}]}]  # fmt: skip
    answer = sdk.messages.create(model="mistral", max_tokens=64, messages=history, tools=[weather])
    assert answer.stop_reason == "end_turn"
    sent = emulator.requests[-1].body["messages"]
    assert sent[1]["role"] == "assistant"
    assert [(call["id"], call["function"]["name"], json.loads(call["function"]["arguments"]))
            for call in sent[1]["tool_calls"]] == [(use.id, "get_weather", {"city": "Paris"})]  # fmt: skip
    assert sent[2:] == [{"role": "tool", "content": "sunny", "tool_call_id": use.id},
                        {"role": "user", "content": "and?"}]  # fmt: skip


def test_a_streamed_tool_use_is_one_block_with_its_json(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="", tool_calls=[("get_weather", '{"city": "Paris"}')]))
    body = {"model": "mistral", "max_tokens": 64, "messages": USER, "stream": True,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}  # fmt: skip
    events = named_events(http.post("/v1/messages", json=body).text)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]  # fmt: skip
    block = events[1][1]["content_block"]
    assert (block["type"], block["name"], block["input"]) == ("tool_use", "get_weather", {})
    assert json.loads(events[2][1]["delta"]["partial_json"]) == {"city": "Paris"}
    assert events[2][1]["delta"]["type"] == "input_json_delta"
    assert events[4][1]["delta"] == {"stop_reason": "tool_use"}


def test_tool_choice_none_sends_no_tools(http: httpx.Client, emulator: Emulator) -> None:
    body = {"model": "mistral", "max_tokens": 8, "messages": USER, "tool_choice": {"type": "none"},
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}  # fmt: skip
    assert http.post("/v1/messages", json=body).status_code == 200
    assert "tools" not in emulator.requests[-1].body


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert body["type"] == "error"
    assert body["request_id"].startswith("req_")
    return response.status_code, body["error"]["type"], body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "kind", "message"),
    [
        ({"max_tokens": 8, "messages": USER}, 400, "invalid_request_error", "model is required"),
        ({"model": "mistral", "messages": USER}, 400, "invalid_request_error",
         "max_tokens is required and must be positive"),
        ({"model": "mistral", "max_tokens": 8}, 400, "invalid_request_error", "messages is required"),
        ({"model": "nope", "max_tokens": 8, "messages": USER}, 404, "not_found_error", "model 'nope' not found"),
        ({"model": "mistral", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}}]}]}, 400, "invalid_request_error",
         "invalid image source type: url. Only base64 images are supported."),
        ({"model": "mistral", "max_tokens": 8, "messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "name": "f", "input": {}}]}]}, 400, "invalid_request_error",
         "tool_use block missing required 'id' field"),
    ],
)  # fmt: skip
def test_errors_are_anthropics(http: httpx.Client, body: dict[str, Any], status: int, kind: str, message: str) -> None:
    assert _error(http.post("/v1/messages", json=body)) == (status, kind, message)


def test_bad_json_is_an_anthropic_error(http: httpx.Client) -> None:
    status, kind, message = _error(http.post("/v1/messages", content=b"{not json"))
    assert (status, kind, message) == (
        400,
        "invalid_request_error",
        "invalid character 'n' looking for beginning of object key string",
    )


def test_the_sdk_raises_its_own_error_types(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        sdk.messages.create(model="nope", max_tokens=8, messages=USER)
    assert raised.value.status_code == 404
    assert raised.value.body["error"] == {"type": "not_found_error", "message": "model 'nope' not found"}


def test_an_upstream_failure_mid_stream_is_an_error_event(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c", error_after=1, error_message="boom"))
    body = {"model": "mistral", "max_tokens": 64, "messages": USER, "stream": True}
    events = named_events(http.post("/v1/messages", json=body).text)
    assert [name for name, _ in events][:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "mistral.rs: boom"}})


def test_count_tokens_is_not_served_as_in_ollama(http: httpx.Client) -> None:
    response = http.post("/v1/messages/count_tokens", json={"model": "mistral", "messages": USER})
    assert (response.status_code, response.text) == (404, "404 page not found")


def test_a_message_is_a_chat_generation_in_the_telemetry(
    http: httpx.Client, telemetry: Telemetry, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    assert http.post("/v1/messages", json={"model": "mistral", "max_tokens": 8, "messages": USER}).status_code == 200
    spans = {span.name: span for span in finished_spans(telemetry.tracer_provider, span_exporter, servers=1)}
    generation, server = spans["chat mistral-7b"], spans["POST /v1/messages"]
    assert generation.parent is not None and generation.parent.span_id == server.context.span_id
    assert (generation.attributes or {})["gen_ai.operation.name"] == "chat"
    assert (server.attributes or {})["http.route"] == "/v1/messages"
    wait_idle(metric_reader)
    counted = points(metric_reader, "mistral_http_requests")
    assert {dict(labels)["endpoint"]: point.value for labels, point in counted.items()} == {"/v1/messages": 1}


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"x-api-key": "k1"}, 200), ({"authorization": "Bearer k1"}, 200), ({"x-api-key": "wrong"}, 401), ({}, 401)],
)
def test_x_api_key_and_bearer_both_authenticate(
    settings: Settings, telemetry: Telemetry, headers: dict[str, str], status: int
) -> None:
    keyed = Settings(mistral_url=settings.mistral_url, api_keys=("k1",))
    with serve_in_thread(create_app(keyed, telemetry=telemetry)) as server:
        body = {"model": "mistral-7b", "max_tokens": 8, "messages": USER}
        response = httpx.post(f"{server.url}/v1/messages", json=body, headers=headers, timeout=30)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"
