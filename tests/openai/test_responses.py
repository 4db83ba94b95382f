"""``/v1/responses`` through the official ``openai`` SDK and raw HTTP, against the emulator: the request becomes an
Ollama chat, the answer a response object or its numbered events, and every error OpenAI's error object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.emulator import Emulator, Reply
from tests.servers import Server
from tests.sse import chat_counts, named_events

HELLO = "Hello from the emulator."


@pytest.fixture
def sdk(proxy: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_a_string_input_is_answered_as_the_ollama_chat_it_translates_to(
    sdk: openai.OpenAI, http: httpx.Client, emulator: Emulator
) -> None:
    response = sdk.responses.create(model="mistral", input="hi", instructions="Be brief.", max_output_tokens=32,
                                    top_p=0.5)  # fmt: skip
    sent = emulator.requests[-1].body
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    # Ollama's defaults here: OpenAI's temperature of 1.0; top_p as given.
    assert (sent["model"], sent["max_tokens"], sent["temperature"], sent["top_p"]) == ("mistral-7b", 32, 1.0, 0.5)
    assert response.id.startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", "mistral")
    assert response.output_text == HELLO
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    echoed = (response.instructions, response.store, response.temperature, response.top_p)
    assert echoed == ("Be brief.", False, 1.0, 0.5)
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    prompt, output = chat_counts(http, conversation, num_predict=32, temperature=1.0, top_p=0.5)
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        prompt, output, prompt + output)  # fmt: skip


def test_items_become_the_conversation(sdk: openai.OpenAI, emulator: Emulator) -> None:
    items: Any = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is sunny."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
    ]
    sdk.responses.create(model="mistral", input=items)
    sent = emulator.requests[-1].body["messages"]
    assert sent[0] == {"role": "user", "content": "weather?"}
    assert sent[1]["role"] == "assistant"
    assert [(call["id"], call["function"]["name"], json.loads(call["function"]["arguments"]))
            for call in sent[1]["tool_calls"]] == [("call_1", "get_weather", {"city": "Paris"})]  # fmt: skip
    assert sent[2:] == [
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "thanks"},
    ]


def test_a_function_call_round_trip(sdk: openai.OpenAI, emulator: Emulator) -> None:
    tool: Any = {"type": "function", "name": "get_weather", "description": "The weather in a city", "strict": False,
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
    emulator.script(Reply(content="", tool_calls=[("get_weather", '{"city": "Paris"}')]))
    asked = sdk.responses.create(model="mistral", input="weather in Paris?", tools=[tool])
    function = {"name": "get_weather", "description": "The weather in a city", "parameters": tool["parameters"]}
    assert emulator.requests[-1].body["tools"] == [{"type": "function", "function": function}]
    [call] = asked.output
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments), call.status) == ("get_weather", {"city": "Paris"}, "completed")
    follow_up: Any = [{"role": "user", "content": "weather in Paris?"}, call.model_dump(exclude_none=True),
                      {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]  # fmt: skip
    answer = sdk.responses.create(model="mistral", input=follow_up, tools=[tool])
    assert answer.output_text == HELLO
    sent = emulator.requests[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "content": "sunny", "tool_call_id": call.call_id}
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id


def test_a_stream_is_the_responses_event_sequence(http: httpx.Client) -> None:
    response = http.post("/v1/responses", json={"model": "mistral", "input": "hi", "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = named_events(response.text)
    names = [name for name, _ in events]
    deltas = names.count("response.output_text.delta")
    assert deltas > 1
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]  # fmt: skip
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    assert text == HELLO
    done = events[-1][1]["response"]
    assert (done["status"], done["output"][0]["content"][0]["text"]) == ("completed", HELLO)
    assert done["output"][0]["id"] == events[2][1]["item"]["id"]
    prompt, output = chat_counts(http, [{"role": "user", "content": "hi"}], temperature=1.0)
    assert (done["usage"]["input_tokens"], done["usage"]["output_tokens"]) == (prompt, output)


def test_the_sdk_streams(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="mistral", input="hi") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == HELLO


def test_reasoning_streams_as_a_reasoning_item_first(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="Paris.", reasoning="France's capital"))
    events = named_events(http.post("/v1/responses", json={"model": "mistral", "input": "hi", "stream": True}).text)
    added = [data["item"]["type"] for name, data in events if name == "response.output_item.added"]
    assert added == ["reasoning", "message"]
    summary = "".join(d["delta"] for n, d in events if n == "response.reasoning_summary_text.delta")
    assert summary == "France's capital"
    output = events[-1][1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]
    assert output[0]["summary"] == [{"type": "summary_text", "text": "France's capital"}]


def test_an_upstream_failure_mid_stream_is_an_error_event(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b c", error_after=1, error_message="boom"))
    events = named_events(http.post("/v1/responses", json={"model": "mistral", "input": "hi", "stream": True}).text)
    name, data = events[-1]
    assert (name, data["code"], data["message"], data["param"]) == ("error", "upstream_error", "mistral.rs: boom", None)
    assert data["sequence_number"] == len(events) - 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"input": "hi"}, 400, "model is required"),
        ({"model": "nope", "input": "hi"}, 404, "model 'nope' not found"),
        ({"model": "mistral", "input": "hi", "previous_response_id": "resp_1"}, 400,
         "previous_response_id is not supported: responses are not stored, so send the whole conversation in input"),
        ({"model": "mistral", "input": [{"content": "hi"}]}, 400,
         "input[0]: input item missing required 'type' field"),
        ({"model": "mistral", "input": [{"type": "computer_call"}]}, 400,
         'input[0]: unknown input item type: "computer_call"'),
        ({"model": "mistral", "input": "hi", "reasoning": {"effort": "huge"}}, 400,
         'invalid reasoning value: "huge" (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or '
         '"none")'),
        ({"model": "mistral", "input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "https://example.com/a.png"}]}]}, 400,
         "image URLs are not currently supported, please use base64 encoded data instead"),
        ({"model": "mistral", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, 400,
         "file inputs are not currently supported"),
    ],
)  # fmt: skip
def test_errors_are_openais(http: httpx.Client, body: dict[str, Any], status: int, message: str) -> None:
    response = http.post("/v1/responses", json=body)
    assert response.status_code == status
    assert response.json()["error"]["message"] == message


def test_the_sdk_raises_its_own_error_types(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.responses.create(model="nope", input="hi")
    assert raised.value.status_code == 404
