"""A team over its limit gets 429 in its API's own shape and headers, on every API family, while another team goes
on unaffected; a model a team may not use does not exist for it; each refusal is counted for its tenant."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from app.main import create_app
from app.settings import Settings
from otel.setup import configure
from tests.otel.helpers import values, wait_idle
from tests.servers import Server, serve_in_thread

KEYS = """
tenants:
  - name: team-a
    keys: [key-a]
    limits: {requests_per_minute: 1}
  - name: team-b
    keys: [key-b]
    limits: {tokens_per_minute: 5}
  - name: team-c
    keys: [key-c]
    limits: {models: ["Qwen/Qwen3-4B"]}
  - name: team-d
    keys: [key-d]
"""
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def proxy(settings: Settings, tmp_path: Path, metric_reader: InMemoryMetricReader) -> Iterator[Server]:
    (tmp_path / "keys.yaml").write_text(KEYS)
    telemetry = configure("test", environ={}, metric_readers=[metric_reader])
    try:
        keyed = dataclasses.replace(settings, api_keys_file=str(tmp_path / "keys.yaml"))
        with serve_in_thread(create_app(keyed, telemetry=telemetry)) as server:
            yield server
    finally:
        telemetry.shutdown()


def _post(proxy: Server, path: str, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{proxy.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)


CHAT = ("/api/chat", {"model": "mistral", "messages": HI, "stream": False})
OPENAI = ("/v1/chat/completions", {"model": "mistral", "messages": HI})
ANTHROPIC = ("/v1/messages", {"model": "mistral", "messages": HI, "max_tokens": 4})


def test_a_team_over_its_requests_per_minute_hears_it_in_each_apis_shape(proxy: Server) -> None:
    assert _post(proxy, *CHAT[:1], "key-a", CHAT[1]).status_code == 200
    ollama = _post(proxy, CHAT[0], "key-a", CHAT[1])
    assert (ollama.status_code, ollama.headers["retry-after"]) == (429, "60")  # one a minute: the next in 60 s
    assert ollama.json() == {"error": "rate limit exceeded: requests per minute (1); retry in 60 s"}
    assert not [name for name in ollama.headers if name.startswith(("x-ratelimit", "anthropic-ratelimit"))]
    openai = _post(proxy, OPENAI[0], "key-a", OPENAI[1])
    assert openai.status_code == 429 and openai.json()["error"] | {"message": ""} == {
        "message": "", "type": "requests", "param": None, "code": "rate_limit_exceeded"}  # fmt: skip
    assert {k: v for k, v in openai.headers.items() if k.startswith("x-ratelimit")} == {
        "x-ratelimit-limit-requests": "1", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": openai.headers["x-ratelimit-reset-requests"]}  # fmt: skip
    assert re.fullmatch(r"\d+(ms|s)|\d+m\d+s", openai.headers["x-ratelimit-reset-requests"])
    anthropic = _post(proxy, ANTHROPIC[0], "key-a", ANTHROPIC[1])
    assert anthropic.status_code == 429 and anthropic.json()["error"]["type"] == "rate_limit_error"
    assert anthropic.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert anthropic.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", anthropic.headers["anthropic-ratelimit-requests-reset"])
    # Another team, meanwhile, is not touched by it.
    assert [_post(proxy, path, "key-d", body).status_code for path, body in (CHAT, OPENAI, ANTHROPIC)] == [200] * 3


def test_a_team_over_its_tokens_waits_for_them_and_the_rest_go_on(
    proxy: Server, metric_reader: InMemoryMetricReader
) -> None:
    first = _post(proxy, *CHAT[:1], "key-b", CHAT[1])
    assert first.status_code == 200  # its estimate (1 token) fit; it used more, charged once it ended
    used = first.json()["prompt_eval_count"] + first.json()["eval_count"]
    assert used > 5
    refused = _post(proxy, OPENAI[0], "key-b", OPENAI[1])
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
    assert refused.headers["x-ratelimit-limit-tokens"] == "5"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(refused.headers["retry-after"]) >= 1
    assert _post(proxy, *CHAT[:1], "key-a", CHAT[1]).status_code == 200
    wait_idle(metric_reader)
    assert values(metric_reader, "mistral_tenant_rate_limited", "tenant", "limit") == {
        ("team-b", "tokens_per_minute"): 1}  # fmt: skip


def test_a_model_a_team_may_not_use_does_not_exist_for_it(proxy: Server) -> None:
    for path, body in (CHAT, OPENAI, ANTHROPIC):
        refused = _post(proxy, path, "key-c", body)
        assert refused.status_code == 404 and "model 'mistral' not found" in refused.text, (path, refused.text)
    show = _post(proxy, "/api/show", "key-c", {"model": "mistral"})
    assert (show.status_code, show.json()) == (404, {"error": "model 'mistral' not found"})
    headers = {"authorization": "Bearer key-c"}
    listed = httpx.get(f"{proxy.url}/api/tags", headers=headers).json()["models"]
    assert [model["name"] for model in listed] == ["Qwen/Qwen3-4B:latest"]
    assert [m["id"] for m in httpx.get(f"{proxy.url}/v1/models", headers=headers).json()["data"]] == [
        "Qwen/Qwen3-4B:latest"]  # fmt: skip
    allowed = _post(proxy, CHAT[0], "key-c", {**CHAT[1], "model": "Qwen/Qwen3-4B"})
    assert allowed.status_code == 200, allowed.text
    assert _post(proxy, CHAT[0], "key-d", CHAT[1]).status_code == 200  # another team sees every model
    assert len(httpx.get(f"{proxy.url}/api/tags", headers={"authorization": "Bearer key-d"}).json()["models"]) > 1


def test_each_configured_limit_is_a_gauge(proxy: Server, metric_reader: InMemoryMetricReader) -> None:
    assert values(metric_reader, "mistral_tenant_limit", "tenant", "limit") == {
        ("team-a", "requests_per_minute"): 1,
        ("team-b", "tokens_per_minute"): 5,
    }
