"""A proxy in front of another proxy: the inner one's 4xx reaches the client as the same clean 4xx (Ollama's
``{"error"}`` on Ollama routes, OpenAI's envelope on ``/v1``), never as a 502 carrying the inner JSON."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.bounds import Bounds
from app.main import create_app
from app.settings import Settings
from tests.servers import Server, serve_in_thread

TWO = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
TOO_MANY = "too many messages: 2 (the limit is 1)"


@pytest.fixture
def gateway(upstream: Server) -> Iterator[httpx.Client]:
    inner_settings = Settings(
        mistral_url=upstream.url, model_aliases={"mistral:latest": "mistral-7b"}, bounds=Bounds(messages=1)
    )
    with serve_in_thread(create_app(inner_settings)) as inner:
        with serve_in_thread(create_app(Settings(mistral_url=inner.url))) as outer:
            with httpx.Client(base_url=outer.url, timeout=30) as http:
                yield http


@pytest.mark.parametrize("stream", [False, True])
def test_an_ollama_route_gets_the_inner_400_as_ollamas_error(gateway: httpx.Client, stream: bool) -> None:
    answer = gateway.post("/api/chat", json={"model": "mistral", "messages": TWO, "stream": stream})
    assert (answer.status_code, answer.json()) == (400, {"error": TOO_MANY})


def test_an_openai_route_gets_the_inner_400_in_openais_envelope(gateway: httpx.Client) -> None:
    answer = gateway.post("/v1/chat/completions", json={"model": "mistral:latest", "messages": TWO})
    assert answer.status_code == 400
    assert answer.json() == {"error": {"message": TOO_MANY, "type": "invalid_request_error", "param": None,
                                       "code": None}}  # fmt: skip


def test_an_unknown_model_is_a_404_at_the_outer_proxy(gateway: httpx.Client) -> None:
    answer = gateway.post("/api/generate", json={"model": "nope", "prompt": "hi"})
    assert (answer.status_code, answer.json()) == (404, {"error": "model 'nope' not found"})
