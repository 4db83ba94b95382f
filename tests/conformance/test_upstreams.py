"""One conformance suite for the HTTP upstream, run against the emulator and a real mistral.rs server alike.

Nothing here depends on the generated text: shapes, counts, durations and statuses only.
"""

from __future__ import annotations

import json
import math
import os

import httpx
import pytest

HI = [{"role": "user", "content": "Say hello."}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
SHORT = {"num_predict": 8}
FINAL = {"model", "created_at", "done", "done_reason", "total_duration", "load_duration", "prompt_eval_count",
         "prompt_eval_duration", "eval_count", "eval_duration"}  # fmt: skip


def _lines(answer: httpx.Response) -> list[dict[str, object]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in answer.text.splitlines()]


def _check_final(final: dict[str, object], field: str, context: str | None) -> None:
    expected = FINAL | {field} | ({context} if context else set())
    assert set(final) == expected, set(final) ^ expected
    assert final["done"] is True and final["done_reason"] in ("stop", "length")
    assert isinstance(final["eval_count"], int) and 1 <= final["eval_count"] <= 8
    assert isinstance(final["prompt_eval_count"], int) and final["prompt_eval_count"] > 0
    durations = [final[key] for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")]
    assert all(isinstance(value, int) and value >= 0 for value in durations)
    assert final["total_duration"] >= final["eval_duration"]  # type: ignore[operator]


def test_the_models_are_listed_and_shown(proxy_http: httpx.Client, model: str) -> None:
    tags = proxy_http.get("/api/tags").json()["models"]
    assert {key for tag in tags for key in tag} == {"name", "model", "modified_at", "size", "digest", "details",
                                                    "capabilities"}  # fmt: skip
    shown = proxy_http.post("/api/show", json={"model": model})
    assert shown.status_code == 200
    assert {"modelfile", "parameters", "template", "details", "model_info", "capabilities"} <= set(shown.json())
    listed = proxy_http.get("/v1/models").json()
    assert listed["object"] == "list" and [entry["id"] for entry in listed["data"]][0] == model


@pytest.mark.parametrize("route", ["/api/chat", "/api/generate"])
def test_a_whole_answer(proxy_http: httpx.Client, model: str, route: str) -> None:
    body = {"messages": HI} if route == "/api/chat" else {"prompt": "Say hello."}
    answer = proxy_http.post(route, json={"model": model, **body, "stream": False, "options": SHORT})
    assert answer.status_code == 200, answer.text
    final = answer.json()
    _check_final(final, "message" if route == "/api/chat" else "response", "context" if route != "/api/chat" else None)
    if route == "/api/chat":
        assert final["message"]["role"] == "assistant" and isinstance(final["message"]["content"], str)


@pytest.mark.parametrize("route", ["/api/chat", "/api/generate"])
def test_a_streamed_answer(proxy_http: httpx.Client, model: str, route: str) -> None:
    body = {"messages": HI} if route == "/api/chat" else {"prompt": "Say hello."}
    lines = _lines(proxy_http.post(route, json={"model": model, **body, "options": SHORT}))
    *parts, final = lines
    assert parts and all(part["done"] is False for part in parts)
    _check_final(final, "message" if route == "/api/chat" else "response", "context" if route != "/api/chat" else None)
    assert final["eval_count"] >= len(parts) - 1 or final["done_reason"] == "length"  # type: ignore[operator]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_logprobs_for_every_token(proxy_http: httpx.Client, model: str, stream: bool) -> None:
    body = {"model": model, "messages": HI, "stream": stream, "logprobs": True, "top_logprobs": 2, "options": SHORT}
    answer = proxy_http.post("/api/chat", json=body)
    if stream:
        *parts, final = _lines(answer)
        entries = [entry for part in parts for entry in part["logprobs"]]  # type: ignore[attr-defined]
        assert "logprobs" not in final
    else:
        final = answer.json()
        entries = final["logprobs"]
    assert len(entries) == final["eval_count"]
    for entry in entries:
        assert set(entry) <= {"token", "logprob", "bytes", "top_logprobs"} and entry["logprob"] <= 0
        assert entry.get("bytes", []) == list(entry["token"].encode())
        alternatives = entry["top_logprobs"]
        assert len(alternatives) == 2 and alternatives[0]["logprob"] >= alternatives[1]["logprob"]
        assert all(a.get("bytes", []) == list(a["token"].encode()) for a in alternatives)
        # Natural logarithms: probabilities that add up to at most 1 (base-10 ones read as natural can exceed it).
        assert sum(math.exp(a["logprob"]) for a in alternatives) <= 1 + 1e-6


def test_openai_chat_passes_through(proxy_http: httpx.Client, model: str) -> None:
    request = {"model": model, "messages": HI, "max_tokens": 8}
    answer = proxy_http.post("/v1/chat/completions", json=request)
    assert answer.status_code == 200, answer.text
    completion = answer.json()
    assert completion["object"] == "chat.completion" and completion["model"]
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["choices"][0]["finish_reason"] in ("stop", "length")
    assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(completion["usage"])
    streamed = proxy_http.post("/v1/chat/completions", json={**request, "stream": True})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    events = [line for line in streamed.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert chunks and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert any(choice.get("finish_reason") for chunk in chunks for choice in chunk["choices"])


def test_model_status_unload_and_reload(proxy_http: httpx.Client, model: str) -> None:
    def manage(action: str) -> str:
        answer = proxy_http.post(f"/v1/models/{action}", json={"model_id": model})
        assert answer.status_code == 200, answer.text
        state: str = answer.json()["status"]
        return state

    assert manage("status") == "loaded"
    assert manage("unload") == "unloaded"
    assert manage("status") == "unloaded"
    assert [model] == [m["name"] for m in proxy_http.get("/api/tags").json()["models"]][:1]
    assert [m["name"] for m in proxy_http.get("/api/ps").json()["models"]] == []
    assert manage("reload") == "loaded"
    answer = proxy_http.post("/api/chat", json={"model": model, "messages": HI, "stream": False, "options": SHORT})
    assert answer.status_code == 200 and answer.json()["done"] is True


def test_health_readiness_and_the_engines_own_metrics(
    proxy_http: httpx.Client, mistral_url: str, request: pytest.FixtureRequest
) -> None:
    assert proxy_http.get("/health").text == "OK"
    assert proxy_http.get("/ready").json() == {"status": "ready", "upstream": "up"}
    assert httpx.get(f"{mistral_url}/health").status_code == 200
    engine = httpx.get(f"{mistral_url}/metrics")
    if request.node.callspec.params["mistral_url"] == "mistralrs" and not os.environ.get("TEST_MISTRAL_URL"):
        assert engine.status_code == 404  # the pinned 0.8.1 serves no /metrics (0.9 does; the emulator follows it)
        return
    assert engine.status_code == 200
    assert "mistralrs_sequences_running" in engine.text


def test_an_unknown_model_is_ollamas_404(proxy_http: httpx.Client) -> None:
    answer = proxy_http.post("/api/chat", json={"model": "no-such-model", "messages": HI})
    assert (answer.status_code, answer.json()) == (404, {"error": "model 'no-such-model' not found"})


@pytest.mark.parametrize("bad", [{"temperature": "hot"}, {"max_tokens": -1}, {"top_k": "many"}])
def test_bad_parameters_are_a_clean_4xx(proxy_http: httpx.Client, model: str, bad: dict[str, object]) -> None:
    answer = proxy_http.post("/v1/chat/completions", json={"model": model, "messages": HI, "max_tokens": 4, **bad})
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("Failed to deserialize the JSON body into the target type: ") and "{" not in message


@pytest.mark.parametrize(("route", "truncate"), [("/api/chat", False), ("/v1/chat/completions", None)])
def test_a_prompt_longer_than_the_context_is_ollamas_400_unless_truncated(
    proxy_http: httpx.Client, model: str, route: str, truncate: bool | None
) -> None:
    long = [{"role": "user", "content": " ".join(["word"] * 9000)}]
    body = {"model": model, "messages": long, "stream": False}
    if truncate is not None:
        body["truncate"] = truncate
    answer = proxy_http.post(route, json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    message = error if isinstance(error, str) else error["message"]
    assert message.startswith("Prompt sequence length is greater than 8192"), message


def test_a_prompt_longer_than_the_context_is_cut_to_fit_by_default(proxy_http: httpx.Client, model: str) -> None:
    # Ollama's truncate defaults to true: a long conversation is answered, not refused.
    long = [{"role": "user", "content": " ".join(["word"] * 9000)}]
    body = {"model": model, "messages": long, "stream": False, "options": {"num_predict": 2}}
    answer = proxy_http.post("/api/chat", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["prompt_eval_count"] <= 8192


def test_embeddings_from_a_chat_model_are_a_clean_400(proxy_http: httpx.Client, model: str) -> None:
    answer = proxy_http.post("/api/embed", json={"model": model, "input": "hello"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("this model does not support this kind of request (mistral.rs: ")


def test_images_to_a_text_model_are_a_clean_400(proxy_http: httpx.Client, model: str) -> None:
    image = {"role": "user", "content": "What is this?", "images": [PIXEL]}
    answer = proxy_http.post("/api/chat", json={"model": model, "messages": [image], "stream": False})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("the model's chat template cannot render these messages (mistral.rs: ")
