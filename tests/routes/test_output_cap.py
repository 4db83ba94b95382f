"""MAX_OUTPUT_TOKENS: no generation writes more, on any route; a request that asks for less keeps its own limit."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from otel.telemetry import Telemetry
from tests.emulator import Emulator
from tests.servers import serve_in_thread

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def capped(settings: Settings, telemetry: Telemetry) -> Iterator[httpx.Client]:
    with serve_in_thread(create_app(dataclasses.replace(settings, max_output_tokens=3), telemetry=telemetry)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield http


def test_no_generation_writes_more_than_the_cap(capped: httpx.Client, emulator: Emulator) -> None:
    chat = capped.post("/api/chat", json={"model": "mistral", "messages": HI, "stream": False}).json()
    assert (chat["eval_count"], chat["done_reason"], emulator.requests[-1].body["max_tokens"]) == (3, "length", 3)
    unlimited = {"model": "mistral", "prompt": "hi", "stream": False, "options": {"num_predict": -1}}
    assert capped.post("/api/generate", json=unlimited).json()["eval_count"] == 3
    assert emulator.requests[-1].body["max_tokens"] == 3
    fewer = {"model": "mistral", "messages": HI, "stream": False, "options": {"num_predict": 2}}
    assert capped.post("/api/chat", json=fewer).json()["eval_count"] == 2  # its own, smaller limit
    openai = {"model": "mistral", "messages": HI, "max_completion_tokens": 50}
    assert capped.post("/v1/chat/completions", json=openai).json()["usage"]["completion_tokens"] == 3
    assert emulator.requests[-1].body["max_completion_tokens"] == 3
    capped.post("/v1/messages", json={"model": "mistral", "messages": HI, "max_tokens": 100})
    assert emulator.requests[-1].body["max_tokens"] == 3
    capped.post("/api/embed", json={"model": "mistral", "input": "hi"})
    assert "max_tokens" not in emulator.requests[-1].body  # an embedding writes no tokens
