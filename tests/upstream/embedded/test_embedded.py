"""The embedded engine (a tiny random-weight model) behind the same routes as a mistral.rs server."""

from __future__ import annotations

import asyncio
import json
import math
import threading

import httpx
import ollama
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.upstream.embedded import EmbeddedUpstream
from otel.telemetry import Telemetry
from tests.otel.helpers import children, finished_spans, points, values, wait_idle
from tests.servers import Server
from tests.waiting import eventually

HI = [{"role": "user", "content": "hello there"}]
MODEL = "tiny:latest"


def test_lists_the_loaded_model(client: ollama.Client) -> None:
    assert [m.model for m in client.list().models] == [MODEL]
    assert [m.model for m in client.ps().models] == [MODEL]
    assert client.show("tiny").capabilities == ["completion", "tools"]


def test_default_reaches_the_one_model_as_with_a_mistralrs_server(client: ollama.Client) -> None:
    reply = client.chat(model="default", messages=HI, options={"num_predict": 2})
    assert (reply.model, reply.eval_count) == ("default", 2)
    assert [m.model for m in client.list().models] == [MODEL]  # listed once, under its own name


def test_chat_generates_exactly_the_tokens_asked_for(client: ollama.Client) -> None:
    reply = client.chat(model="tiny", messages=HI, options={"num_predict": 8})
    assert reply.message.role == "assistant" and isinstance(reply.message.content, str)
    assert (reply.done, reply.done_reason, reply.eval_count) == (True, "length", 8)
    assert reply.prompt_eval_count is not None and reply.prompt_eval_count > 0


def test_images_and_content_parts_reach_a_text_model_as_text(client: ollama.Client, http: httpx.Client) -> None:
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    reply = client.chat(model="tiny", messages=[{"role": "user", "content": "What is this?", "images": [pixel]}],
                        options={"num_predict": 2})  # fmt: skip
    assert (reply.done_reason, reply.eval_count) == ("length", 2)  # the image dropped, as Ollama does
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
    ]
    answer = http.post("/v1/chat/completions", json={"model": "tiny", "max_tokens": 2,
                                                     "messages": [{"role": "user", "content": parts}]})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 2


def test_streamed_chat_and_generate(client: ollama.Client) -> None:
    parts = list(client.chat(model="tiny", messages=HI, stream=True, options={"num_predict": 6}))
    assert parts[-1].done is True and parts[-1].eval_count == 6
    assert all(not part.done for part in parts[:-1]) and len(parts) >= 2
    generated = list(client.generate(model="tiny", prompt="once upon a time", stream=True, options={"num_predict": 5}))
    assert generated[-1].done is True and generated[-1].eval_count == 5


def test_raw_generate_uses_text_completion(client: ollama.Client) -> None:
    reply = client.generate(model="tiny", prompt="abc", raw=True, options={"num_predict": 4})
    assert reply.done is True and reply.eval_count == 4 and isinstance(reply.response, str)


def test_openai_routes_are_served_by_the_engine(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": HI, "max_tokens": 5}
    answer = http.post("/v1/chat/completions", json=body).json()
    assert answer["object"] == "chat.completion" and answer["model"] == MODEL  # as the client named it, as Ollama
    assert answer["usage"]["completion_tokens"] == 5
    assert answer["choices"][0]["finish_reason"] == "length"
    events = http.post("/v1/chat/completions", json={**body, "stream": True}).text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert not any("usage" in chunk for chunk in chunks[:-1])


def test_embeddings_are_a_clear_error_on_a_chat_model(http: httpx.Client) -> None:
    response = http.post("/api/embed", json={"model": "tiny", "input": "x"})
    assert (response.status_code, response.json()) == (400, {"error": "this model does not support embeddings"})


def test_invalid_messages_never_reach_the_engine(http: httpx.Client) -> None:
    bad = {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}
    response = http.post("/v1/chat/completions", json=bad)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "each message needs a role: system, user, assistant or tool"
    empty = {"model": MODEL, "messages": [{"role": "user"}], "max_tokens": 2}  # no content: the engine would panic
    assert http.post("/v1/chat/completions", json=empty).status_code == 200


def test_unload_then_load_is_measured_and_traced(
    client: ollama.Client, engine: EmbeddedUpstream, telemetry: Telemetry, span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:  # fmt: skip
    assert client.generate(model="tiny", prompt="", keep_alive=0).done_reason == "unload"
    assert not engine.loaded and client.ps().models == []
    loaded = client.chat(model="tiny", messages=[])
    assert loaded.done_reason == "load" and loaded.load_duration is not None and loaded.load_duration > 0
    assert engine.loaded
    load = points(metric_reader, "mistral_model_load_duration")
    assert [p.count for p in load.values()] == [1] and list(load) == [frozenset({("model", "tiny")})]
    assert abs(next(iter(load.values())).sum - loaded.load_duration / 1e9) < 0.01
    spans = finished_spans(telemetry.tracer_provider, span_exporter, servers=3)
    assert [span.name for span in spans if span.name.startswith("load_model")] == ["load_model tiny"]


def test_a_request_after_unload_reloads_and_reports_the_load(client: ollama.Client, engine: EmbeddedUpstream) -> None:
    client.generate(model="tiny", prompt="", keep_alive=0)
    reply = client.chat(model="tiny", messages=HI, options={"num_predict": 2})
    assert engine.loaded and reply.eval_count == 2
    assert reply.load_duration is not None and reply.load_duration > 1_000_000  # a real load, not the hop upstream


def test_concurrent_requests_all_complete(proxy: Server) -> None:
    results: list[int | None] = []

    def ask(n: int) -> None:
        with ollama.Client(host=proxy.url) as client:
            results.append(client.chat(model="tiny", messages=HI, options={"num_predict": 4 + n}).eval_count)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r for r in results if r is not None) == [4, 5, 6, 7]


def test_tokens_metric_equals_the_engines_usage(
    http: httpx.Client, metric_reader: InMemoryMetricReader, telemetry: Telemetry, span_exporter: InMemorySpanExporter
) -> None:
    usage = 0
    for n in (3, 5):
        body = {"model": MODEL, "messages": HI, "max_tokens": n}
        usage += http.post("/v1/chat/completions", json=body).json()["usage"]["completion_tokens"]
    wait_idle(metric_reader)
    assert usage == 8
    assert values(metric_reader, "mistral_generate_tokens", "model", "upstream") == {("tiny", "embedded"): 8}
    spans = finished_spans(telemetry.tracer_provider, span_exporter, servers=2)
    genai = [span for span in spans if span.name == "chat tiny"]
    assert len(genai) == 2
    for span in genai:
        assert [child.name for child in children(spans, span)] == ["mistralrs chat"]
        engine_span = children(spans, span)[0]
        # When the engine had read the prompt: its first chunk, after the span began and before it ended.
        assert [event.name for event in engine_span.events] == ["prompt read"]
        assert engine_span.start_time < engine_span.events[0].timestamp <= engine_span.end_time  # type: ignore[operator]


@pytest.mark.parametrize("engine_limits", [{"concurrency": 1, "max_queue": 1}])
def test_beyond_the_queue_requests_get_ollamas_busy_answer(proxy: Server, engine: EmbeddedUpstream) -> None:
    asyncio.run_coroutine_threadsafe(engine.slots.acquire(), proxy.loop).result(5)  # a generation holds the one slot
    body = {"model": MODEL, "messages": HI, "stream": False, "options": {"num_predict": 2}}
    with httpx.Client(base_url=proxy.url, timeout=60) as http:
        waiting: list[int] = []
        waiter = threading.Thread(target=lambda: waiting.append(http.post("/api/chat", json=body).status_code))
        waiter.start()
        eventually(lambda: engine.slots.waiting == 1, within=10.0)
        refused = http.post("/api/chat", json=body)
        assert refused.status_code == 503
        assert refused.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
        assert waiting == []
        proxy.loop.call_soon_threadsafe(engine.slots.release)
        waiter.join(60)
    assert waiting == [200]


@pytest.mark.parametrize("engine_limits", [{"concurrency": 1}])
def test_client_disconnect_stops_the_engine_stream(
    proxy: Server, engine: EmbeddedUpstream, metric_reader: InMemoryMetricReader
) -> None:
    body = {"model": MODEL, "messages": HI, "options": {"num_predict": 2000}}  # about 2.5 s of generation here
    with httpx.Client(base_url=proxy.url, timeout=60) as http:
        with http.stream("POST", "/api/chat", json=body) as response:
            lines = response.iter_lines()
            next(lines)
            assert engine.active_streams == 1, list(lines)[-1:]  # the engine stream has not ended by itself
        eventually(lambda: engine.active_streams == 0, within=10.0)
        follow_up = http.post("/api/chat", json={**body, "stream": False, "options": {"num_predict": 2}})
        assert follow_up.status_code == 200 and follow_up.json()["eval_count"] == 2
    wait_idle(metric_reader)
    assert values(metric_reader, "mistral_http_requests", "endpoint", "status", "error_type") == {
        ("/api/chat", "200", "client_disconnected"): 1,
        ("/api/chat", "200", "none"): 1,
    }
    # stopped at its next token, long before the 2000 it asked for: the tokens made are the 2 of the follow-up and
    # the few the first had made by then
    made = values(metric_reader, "mistral_generate_tokens", "model", "upstream")[("tiny", "embedded")]
    assert 3 <= made < 500


def _check_logprob(entry: dict[str, object], top: int) -> None:
    token, alternatives = entry["token"], entry.get("top_logprobs", [])
    assert isinstance(token, str) and isinstance(alternatives, list)
    assert entry.get("bytes", []) == list(token.encode())
    assert isinstance(entry["logprob"], float) and entry["logprob"] <= 0
    assert len(alternatives) == top
    assert [a["logprob"] for a in alternatives] == sorted((a["logprob"] for a in alternatives), reverse=True)
    assert all(a.get("bytes", []) == list(a["token"].encode()) for a in alternatives)


def test_logprobs_come_from_the_engine_in_natural_logarithms(http: httpx.Client) -> None:
    body = {"model": "tiny", "messages": HI, "stream": False, "logprobs": True, "top_logprobs": 20,
            "options": {"num_predict": 4}}  # fmt: skip
    answer = http.post("/api/chat", json=body).json()
    assert len(answer["logprobs"]) == answer["eval_count"] == 4
    for entry in answer["logprobs"]:
        _check_logprob(entry, 20)
        # The 20 likeliest of the model's 399 tokens hold at least 20/399 of the probability: true of natural
        # logarithms only (base-10 ones read as natural would give far less).
        mass = sum(math.exp(a["logprob"]) for a in entry["top_logprobs"])
        assert 20 / 399 <= mass <= 1 + 1e-6


def test_streamed_logprobs_come_one_token_per_line(http: httpx.Client) -> None:
    body = {"model": "tiny", "prompt": "hello", "logprobs": True, "top_logprobs": 2, "options": {"num_predict": 5}}
    lines = [json.loads(line) for line in http.post("/api/generate", json=body).text.splitlines()]
    tokens = [line for line in lines if not line["done"]]
    assert [len(line["logprobs"]) for line in tokens] == [1] * 5 and lines[-1]["eval_count"] == 5
    for line in tokens:
        _check_logprob(line["logprobs"][0], 2)
    assert "logprobs" not in lines[-1]


def test_raw_generate_with_logprobs_is_a_clear_error_in_process(http: httpx.Client) -> None:
    answer = http.post("/api/generate", json={"model": "tiny", "prompt": "x", "raw": True, "logprobs": True})
    assert (answer.status_code, answer.json()) == (400, {
        "error": "the in-process engine returns logprobs for templated prompts only, not raw or suffix"})  # fmt: skip


def test_anthropic_and_responses_answer_as_the_chat_they_translate_to(http: httpx.Client) -> None:
    # Greedy, so the three routes must give the same text and counts for the same conversation.
    hi = [{"role": "user", "content": "hi"}]
    options = {"num_predict": 5, "temperature": 0}
    chat = http.post("/api/chat", json={"model": "tiny", "messages": hi, "stream": False, "options": options}).json()
    message = http.post("/v1/messages", json={"model": "tiny", "max_tokens": 5, "temperature": 0,
                                              "messages": [{"role": "user", "content": "hi"}]}).json()  # fmt: skip
    assert [(block["type"], block["text"]) for block in message["content"]] == [("text", chat["message"]["content"])]
    assert message["usage"] == {"input_tokens": chat["prompt_eval_count"], "output_tokens": 5}
    assert message["stop_reason"] == "max_tokens"
    response = http.post("/v1/responses", json={"model": "tiny", "max_output_tokens": 5, "temperature": 0,
                                                "input": "hi"}).json()  # fmt: skip
    assert response["output"][0]["content"][0]["text"] == chat["message"]["content"]
    assert (response["usage"]["input_tokens"], response["usage"]["output_tokens"]) == (chat["prompt_eval_count"], 5)


def test_a_prompt_longer_than_the_context_is_cut_unless_truncate_is_false(http: httpx.Client) -> None:
    long = [{"role": "user", "content": " ".join(["word"] * 3000)}]  # the tiny model's context is 2,048 tokens
    body = {"model": "tiny", "messages": long, "stream": False, "options": {"num_predict": 2, "temperature": 0}}
    cut = http.post("/api/chat", json=body)
    assert cut.status_code == 200, cut.text
    assert cut.json()["prompt_eval_count"] <= 2048
    refused = http.post("/api/chat", json={**body, "truncate": False})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("Prompt sequence length is greater than 2048")
