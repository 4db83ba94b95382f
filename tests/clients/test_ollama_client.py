"""End to end: the official ``ollama`` Python client against the proxy in front of the mistral.rs emulator."""

from __future__ import annotations

import json

import ollama
import pytest

from tests.emulator import Emulator, Reply

HI = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a given city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

# Ollama's defaults, in mistral.rs's names, sent whenever a request gives no option of its own
OLLAMA_DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.1}


def _assert_final_stats(reply: ollama.ChatResponse | ollama.GenerateResponse) -> None:
    assert reply.done is True
    assert reply.done_reason == "stop"
    for name in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(getattr(reply, name), int), name
    assert reply.total_duration >= reply.prompt_eval_duration + reply.eval_duration  # type: ignore[operator]
    assert reply.prompt_eval_count == 4  # "hi": one word + 3 per message, the emulator's usage
    assert reply.eval_count == 4  # "Hello from the emulator." is 4 tokens


def test_list_shows_every_served_model_with_a_tag(client: ollama.Client) -> None:
    models = client.list().models
    assert [m.model for m in models] == ["mistral-7b:latest", "mistral:latest", "Qwen/Qwen3-4B:latest"]
    first = models[0]
    assert first.size == 0
    assert first.digest is not None and len(first.digest) == 64
    assert first.details is not None
    assert (first.details.family, first.details.parameter_size) == ("mistral", "7B")
    assert first.modified_at is not None


def test_ps_lists_only_loaded_models(client: ollama.Client) -> None:
    running = client.ps().models
    assert [m.model for m in running] == ["mistral-7b:latest", "mistral:latest"]
    assert running[0].expires_at is not None and running[0].expires_at.year > 2300
    assert running[0].size_vram == 0


def test_show_reports_details_capabilities_and_model_info(client: ollama.Client) -> None:
    shown = client.show("Qwen/Qwen3-4B")
    assert shown.modelinfo == {
        "general.architecture": "qwen3",
        "general.basename": "qwen3-4b",
        "general.parameter_count": 4_000_000_000,
    }
    assert shown.capabilities == ["completion", "thinking"]  # a mistral.rs server does not show its template
    assert shown.template == "{{ .Prompt }}"
    # Ollama's defaults, which the proxy applies when a request gives no options (the model carries none)
    assert shown.parameters == (
        "repeat_penalty                 1.1\n"
        "temperature                    0.8\n"
        "top_k                          40\n"
        "top_p                          0.9"
    )
    assert shown.modelfile.endswith(
        'TEMPLATE """{{ .Prompt }}"""\n'
        "PARAMETER repeat_penalty 1.1\nPARAMETER temperature 0.8\nPARAMETER top_k 40\nPARAMETER top_p 0.9\n"
    )
    assert shown.modelfile is not None and "FROM Qwen/Qwen3-4B\n" in shown.modelfile


def test_chat_not_streamed(client: ollama.Client, emulator: Emulator) -> None:
    reply = client.chat(model="mistral", messages=HI, options={"temperature": 0.2, "num_predict": 64})
    assert reply.model == "mistral"
    assert reply.message.role == "assistant"
    assert reply.message.content == "Hello from the emulator."
    _assert_final_stats(reply)
    sent = emulator.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "mistral-7b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "temperature": 0.2,
        "max_tokens": 64,
        "top_k": 40,  # the options not given: Ollama's defaults
        "top_p": 0.9,
        "repetition_penalty": 1.1,
        "truncate_sequence": True,  # Ollama's truncate, on by default
    }


def test_chat_streamed(client: ollama.Client) -> None:
    parts = list(client.chat(model="mistral:latest", messages=HI, stream=True))
    assert [p.message.content for p in parts] == ["Hello", " from", " the", " emulator.", ""]
    assert [p.done for p in parts] == [False, False, False, False, True]
    _assert_final_stats(parts[-1])


def test_generate_not_streamed_and_streamed(client: ollama.Client, emulator: Emulator) -> None:
    reply = client.generate(model="mistral", prompt="hi", system="be brief")
    assert reply.response == "Hello from the emulator."
    assert emulator.requests[-1].body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    parts = list(client.generate(model="mistral", prompt="hi", stream=True))
    assert "".join(p.response for p in parts) == "Hello from the emulator."
    assert parts[-1].done is True and parts[-1].eval_count == 4


def test_generate_raw_uses_text_completions(client: ollama.Client, emulator: Emulator) -> None:
    reply = client.generate(model="mistral", prompt="[INST] hi [/INST]", raw=True)
    assert reply.response == "Hello from the emulator."
    sent = emulator.requests[-1]
    assert sent.path == "/v1/completions"
    assert sent.body == {"model": "mistral-7b", "stream": False, "prompt": "[INST] hi [/INST]", **OLLAMA_DEFAULTS,
                         "truncate_sequence": True}  # fmt: skip
    assert reply.eval_count == 4 and reply.prompt_eval_count == 3  # the emulator counts the prompt's words


def test_streamed_raw_generate_counts_chunks_without_usage(client: ollama.Client, emulator: Emulator) -> None:
    parts = list(client.generate(model="mistral", prompt="[INST] hi [/INST]", raw=True, stream=True))
    assert emulator.requests[-1].body["stream"] is True
    # streamed text completions carry no usage: the proxy counts the chunks it relayed
    assert parts[-1].eval_count == 4 and parts[-1].prompt_eval_count is None


def test_generate_suffix_is_fill_in_the_middle(client: ollama.Client, emulator: Emulator) -> None:
    client.generate(model="mistral", prompt="def add(a, b):", suffix="    return c")
    sent = emulator.requests[-1]
    assert sent.path == "/v1/completions"
    assert sent.body == {
        "model": "mistral-7b", "stream": False, "prompt": "def add(a, b):", "suffix": "    return c", **OLLAMA_DEFAULTS,
        "truncate_sequence": True,
    }  # fmt: skip


def test_embed_shortens_to_dimensions_and_renormalises(client: ollama.Client) -> None:
    vector = client.embed(model="mistral", input="a", dimensions=3).embeddings[0]
    assert len(vector) == 3
    assert sum(value * value for value in vector) == pytest.approx(1.0)


def test_tool_calls_round_trip(client: ollama.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="", tool_calls=[("get_weather", '{"city": "Tokyo"}')]))
    reply = client.chat(model="mistral", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL])
    assert reply.message.tool_calls is not None
    call = reply.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Tokyo"}
    assert emulator.requests[-1].body["tools"] == [WEATHER_TOOL]

    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}],
        },
        {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"},
    ]
    client.chat(model="mistral", messages=history, tools=[WEATHER_TOOL])
    sent = emulator.requests[-1].body["messages"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert sent[1]["tool_calls"] == [
        {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'}}
    ]
    assert sent[2] == {"role": "tool", "content": "11 degrees", "tool_call_id": call_id, "name": "get_weather"}


def test_streamed_tool_call_arrives_whole_before_done(client: ollama.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="", tool_calls=[("get_weather", '{"city":"Paris"}')]))
    parts = list(client.chat(model="mistral", messages=HI, tools=[WEATHER_TOOL], stream=True))
    calls = [p.message.tool_calls for p in parts if p.message.tool_calls]
    assert len(calls) == 1 and calls[0][0].function.arguments == {"city": "Paris"}
    assert parts[-1].done is True and parts[-1].done_reason == "stop"


def test_thinking_is_relayed(client: ollama.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="Blue.", reasoning="Rayleigh scattering"))
    reply = client.chat(model="Qwen/Qwen3-4B", messages=HI, think=True)
    assert reply.message.thinking == "Rayleigh scattering"
    assert reply.message.content == "Blue."
    assert emulator.requests[-1].body["enable_thinking"] is True


def test_format_schema_becomes_response_format(client: ollama.Client, emulator: Emulator) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    emulator.script(Reply(content='{"age": 22}'))
    reply = client.chat(model="mistral", messages=HI, format=schema)
    assert json.loads(reply.message.content or "") == {"age": 22}
    assert emulator.requests[-1].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }


def test_length_limit_reports_done_reason_length(client: ollama.Client) -> None:
    reply = client.chat(model="mistral", messages=HI, options={"num_predict": 2})
    assert reply.message.content == "Hello from"
    assert reply.done_reason == "length"
    assert reply.eval_count == 2


def test_embed_and_legacy_embeddings(client: ollama.Client, emulator: Emulator) -> None:
    batch = client.embed(model="mistral", input=["a", "b"])
    assert len(batch.embeddings) == 2 and all(len(v) == 8 for v in batch.embeddings)
    assert batch.prompt_eval_count == 2  # the emulator counts words
    assert isinstance(batch.total_duration, int)
    assert emulator.requests[-1].body == {"model": "mistral-7b", "input": ["a", "b"]}
    single = client.embeddings(model="mistral", prompt="a")
    assert single.embedding == pytest.approx(batch.embeddings[0])


def test_load_and_unload_with_empty_prompt(client: ollama.Client, emulator: Emulator) -> None:
    unloaded = client.generate(model="mistral", prompt="", keep_alive=0)
    assert (unloaded.done, unloaded.done_reason) == (True, "unload")
    assert emulator.model("mistral-7b").status == "unloaded"
    assert client.ps().models == []

    loaded = client.chat(model="mistral", messages=[])
    assert (loaded.done, loaded.done_reason) == (True, "load")
    assert emulator.model("mistral-7b").status == "loaded"
    assert loaded.load_duration is not None and loaded.load_duration > 0
    assert [r.path for r in emulator.requests[-2:]] == ["/v1/models/status", "/v1/models/reload"]


def test_pull_of_a_served_model_succeeds(client: ollama.Client) -> None:
    assert client.pull("mistral").status == "success"
    assert [p.status for p in client.pull("mistral", stream=True)] == ["pulling manifest", "success"]


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (lambda c: c.chat(model="nope", messages=HI), 404, "model 'nope' not found"),
        (lambda c: c.generate(model="nope", prompt="hi"), 404, "model 'nope' not found"),
        (lambda c: c.show("nope"), 404, "model 'nope' not found"),
        (lambda c: c.embed(model="nope", input="x"), 404, 'model "nope" not found, try pulling it first'),
        (
            lambda c: c.pull("nope"),
            404,
            "model 'nope' not found: this server cannot pull models; "
            "models are managed by mistral.rs, not through this API",
        ),
        (
            lambda c: c.delete("mistral"),
            501,
            "deleting models is not supported: models are managed by mistral.rs, not through this API",
        ),
        (
            lambda c: c.copy("mistral", "copy"),
            501,
            "copying models is not supported: models are managed by mistral.rs, not through this API",
        ),
        (
            lambda c: c.chat(model="mistral", messages=HI, think="extreme"),
            400,
            'invalid think value: "extreme" (must be true, false, "low", "medium", "high" or "max")',
        ),
    ],
)
def test_errors_surface_as_response_errors(client: ollama.Client, call, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ollama.ResponseError) as caught:
        call(client)
    assert (caught.value.status_code, caught.value.error) == (status, message)


def test_error_mid_stream_raises_from_the_stream(client: ollama.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="one two three", error_after=2, error_message="engine exploded"))
    stream = client.chat(model="mistral", messages=HI, stream=True)
    assert next(stream).message.content == "one"
    assert next(stream).message.content == " two"
    with pytest.raises(ollama.ResponseError) as caught:
        next(stream)
    assert caught.value.error == "mistral.rs: engine exploded"
    assert caught.value.status_code == -1
