from __future__ import annotations

from collections.abc import Iterator

import httpx
import ollama
import pytest

from app.main import create_app
from app.settings import Settings
from tests.emulator import Emulator
from tests.servers import Server, serve_in_thread


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def upstream(emulator: Emulator) -> Iterator[Server]:
    with serve_in_thread(emulator.app) as server:
        yield server


@pytest.fixture
def settings(upstream: Server) -> Settings:
    return Settings(mistral_url=upstream.url, model_aliases={"mistral:latest": "mistral-7b"})


@pytest.fixture
def proxy(settings: Settings) -> Iterator[Server]:
    with serve_in_thread(create_app(settings)) as server:
        yield server


@pytest.fixture
def client(proxy: Server) -> Iterator[ollama.Client]:
    client = ollama.Client(host=proxy.url)
    yield client
    client.close()


@pytest.fixture
def http(proxy: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        yield client
