"""The OpenAI-compatible pass-through: names mapped, bodies relayed, SSE chunk by chunk."""

from __future__ import annotations

import json

import httpx
import openai

from app.bounds import Bounds
from app.main import create_app
from app.settings import Settings
from tests.emulator import Emulator, Reply
from tests.servers import Server, serve_in_thread


def test_chat_completion_is_relayed_with_the_model_id(http: httpx.Client, emulator: Emulator) -> None:
    body = {"model": "mistral", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Hello from the emulator."
    assert answer["usage"] == {"prompt_tokens": answer["usage"]["prompt_tokens"], "completion_tokens": 4,
                               "total_tokens": answer["usage"]["prompt_tokens"] + 4}  # fmt: skip
    assert emulator.requests[-1].body == {**body, "model": "mistral-7b"}


def test_streamed_chat_completion_is_relayed_as_sse(http: httpx.Client) -> None:
    body = {"model": "mistral-7b", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == "Hello from the emulator."
    # In Ollama's shape: no null fields, usage with OpenAI's three counts only, the model as the client named it.
    assert ["usage" in c for c in chunks] == [False, False, False, True]
    assert sorted(chunks[-1]["usage"]) == ["completion_tokens", "prompt_tokens", "total_tokens"]
    assert {c["model"] for c in chunks} == {"mistral-7b"}
    assert all(None not in c["choices"][0]["delta"].values() and "logprobs" not in c["choices"][0] for c in chunks)


def test_an_answer_names_the_model_as_the_client_did(http: httpx.Client, emulator: Emulator) -> None:
    body = {"model": "mistral", "messages": [{"role": "user", "content": "hi"}]}
    answer = http.post("/v1/chat/completions", json=body).json()
    assert (answer["model"], emulator.requests[-1].body["model"]) == ("mistral", "mistral-7b")
    assert "logprobs" not in answer["choices"][0]
    assert None not in answer["choices"][0]["message"].values()


def test_streamed_error_becomes_an_openai_error_event(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script(Reply(content="a b", error_after=1, error_message="boom"))
    body = {"model": "mistral", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    events = http.post("/v1/chat/completions", json=body).text.split("\n\n")
    assert json.loads(events[-3].removeprefix("data: ")) == {
        "error": {"message": "mistral.rs: boom", "type": "server_error", "param": None, "code": None}
    }
    assert events[-2] == "data: [DONE]"


def test_completions_and_embeddings(http: httpx.Client, emulator: Emulator) -> None:
    completion = http.post("/v1/completions", json={"model": "mistral", "prompt": "once upon"}).json()
    assert completion["choices"][0]["text"] == "Hello from the emulator."
    assert emulator.requests[-1].body["model"] == "mistral-7b"
    embedding = http.post("/v1/embeddings", json={"model": "mistral", "input": "x"}).json()
    assert len(embedding["data"][0]["embedding"]) == 8


def test_models_lists_ollama_names(http: httpx.Client) -> None:
    listed = http.get("/v1/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["mistral-7b:latest", "mistral:latest", "Qwen/Qwen3-4B:latest"]
    assert {m["owned_by"] for m in listed["data"]} == {"mistral.rs"}


def test_unknown_model_is_an_openai_404(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    assert response.status_code == 404
    assert response.json() == {
        "error": {"message": "model 'nope' not found", "type": "not_found_error", "param": None, "code": None}
    }


def test_non_object_body_is_an_openai_400(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b"[1]")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "invalid request: Expected `object`, got `array`"


def test_model_management_routes_stand_in_for_mistralrs(http: httpx.Client, emulator: Emulator) -> None:
    assert http.post("/v1/models/unload", json={"model_id": "mistral"}).json() == {
        "model_id": "mistral",
        "status": "unloaded",
    }
    assert emulator.model("mistral-7b").status == "unloaded"
    assert http.post("/v1/models/reload", json={"model_id": "mistral"}).json()["status"] == "loaded"
    assert http.post("/v1/models/status", json={"model_id": "nope"}).json() == {
        "model_id": "nope",
        "status": "not_found",
    }
    unknown = http.post("/v1/models/explode", json={"model_id": "mistral"})  # GET /v1/models/{model} only
    assert (unknown.status_code, unknown.text) == (405, "405 method not allowed")
    health = http.get("/health")
    assert (health.status_code, health.text) == (200, "OK")


def _invalid(message: str) -> dict[str, object]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def test_deeply_nested_json_is_a_400(http: httpx.Client, emulator: Emulator) -> None:
    deep = b'{"model": "mistral", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = http.post("/v1/chat/completions", content=deep)
    assert (response.status_code, response.json()) == (400, _invalid("invalid JSON: nested too deeply"))
    assert [r for r in emulator.requests if r.path == "/v1/chat/completions"] == []


def test_the_api_limits_on_messages_and_images_apply_to_v1(upstream: Server) -> None:
    settings = Settings(mistral_url=upstream.url, bounds=Bounds(messages=3, image_bytes=30))
    with serve_in_thread(create_app(settings)) as proxy, httpx.Client(base_url=proxy.url) as http:
        many = {"model": "mistral-7b", "messages": [{"role": "user", "content": "hi"}] * 4}
        response = http.post("/v1/chat/completions", json=many)
        assert (response.status_code, response.json()) == (400, _invalid("too many messages: 4 (the limit is 3)"))
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "QUJD" * 16}}
        big = {"model": "mistral-7b", "messages": [{"role": "user", "content": [image]}]}
        response = http.post("/v1/chat/completions", json=big)
        assert (response.status_code, response.json()) == (413, _invalid("image too large: 48 bytes (the limit is 30)"))
        fine = {"model": "mistral-7b", "messages": [{"role": "user", "content": "hi"}] * 3}
        assert http.post("/v1/chat/completions", json=fine).status_code == 200


def test_every_list_in_an_openai_request_is_bounded(upstream: Server, emulator: Emulator) -> None:
    bounds = Bounds(images=2, image_total_bytes=60, tools=1, stop=2, content_parts=3, inputs=2)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "QUJD" * 12}}  # 36 bytes
    text = {"type": "text", "text": "hi"}
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    chat = {"model": "mistral-7b", "messages": [{"role": "user", "content": "hi"}]}
    refusals = [
        ("/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": [text] * 4}]},
         "too many content parts in a message: 4 (the limit is 3)"),
        ("/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": [image, text]}] * 3},
         "too many images: 3 (the limit is 2)"),
        ("/v1/chat/completions", {**chat, "tools": [tool, tool]}, "too many tools: 2 (the limit is 1)"),
        ("/v1/chat/completions", {**chat, "stop": ["a", "b", "c"]}, "too many stop sequences: 3 (the limit is 2)"),
        ("/v1/completions", {"model": "mistral-7b", "prompt": "hi", "stop": ["a", "b", "c"]},
         "too many stop sequences: 3 (the limit is 2)"),
        ("/v1/embeddings", {"model": "mistral-7b", "input": ["a", "b", "c"]}, "too many inputs: 3 (the limit is 2)"),
    ]  # fmt: skip
    settings = Settings(mistral_url=upstream.url, bounds=bounds)
    with serve_in_thread(create_app(settings)) as proxy, httpx.Client(base_url=proxy.url) as http:
        for path, body, message in refusals:
            response = http.post(path, json=body)
            assert (response.status_code, response.json()) == (400, _invalid(message)), path
        # Two images of 36 bytes: each within its own limit, together over the request's.
        response = http.post(
            "/v1/chat/completions", json={**chat, "messages": [{"role": "user", "content": [image]}] * 2}
        )
        assert (response.status_code, response.json()["error"]["message"]) == (
            413, "images too large: over 60 bytes in one request (the limit is 60)")  # fmt: skip
        assert [r for r in emulator.requests if r.path.startswith("/v1/")] == []
        fine = {**chat, "messages": [{"role": "user", "content": [text, text, image]}], "tools": [tool], "stop": ["a"]}
        assert http.post("/v1/chat/completions", json=fine).status_code == 200


def test_one_model_is_retrieved_in_the_openai_shape_as_ollama_serves_it(http: httpx.Client) -> None:
    listed = {model["id"]: model for model in http.get("/v1/models").json()["data"]}
    assert {"mistral:latest", "Qwen/Qwen3-4B:latest"} <= set(listed)  # an alias, and an id with a slash
    for model_id in listed:
        response = http.get(f"/v1/models/{model_id}")
        assert (response.status_code, response.json()) == (200, listed[model_id])
        assert set(response.json()) == {"id", "object", "created", "owned_by"}
    assert http.get("/v1/models/mistral-7b").json() == listed["mistral-7b:latest"]  # the id finds its own entry
    missing = http.get("/v1/models/llama3")
    not_found = {"message": "model 'llama3' not found", "type": "not_found_error", "param": None, "code": None}
    assert (missing.status_code, missing.json()) == (404, {"error": not_found})  # openai.NewError's type for 404


def test_the_openai_client_retrieves_a_model(proxy: Server) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused")
    try:
        model = client.models.retrieve("mistral:latest")
        assert (model.id, model.object, model.owned_by) == ("mistral:latest", "model", "mistral.rs")
    finally:
        client.close()
