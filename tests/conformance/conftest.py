"""The upstreams the conformance suite runs against: the emulator always; a real mistral.rs server when one is
there — ``TEST_MISTRAL_URL`` (your own), else the pinned build (``scripts/build-programs.sh mistralrs``) serving
the default SmolLM2 GGUF on a free loopback port."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.emulator import Emulator, ModelEntry
from tests.mistralrs_server import mistralrs_binary, running_mistralrs
from tests.servers import serve_in_thread


@pytest.fixture(scope="session")
def real_mistralrs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("TEST_MISTRAL_URL"):
        yield url.rstrip("/")
        return
    binary = mistralrs_binary()
    if binary is None:
        pytest.skip("no mistral.rs server: scripts/build-programs.sh mistralrs builds one (or set TEST_MISTRAL_URL)")
    with running_mistralrs(binary, tmp_path_factory.mktemp("mistralrs") / "serve.log") as url:
        yield url


@pytest.fixture(params=["emulator", pytest.param("mistralrs", marks=pytest.mark.real_upstream)])
def mistral_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a mistral.rs server: the emulator's, or a real one's."""
    if request.param == "mistralrs":
        yield request.getfixturevalue("real_mistralrs")
        return
    with serve_in_thread(Emulator([ModelEntry("smollm2", category="text")]).app) as emulator:
        yield emulator.url


@pytest.fixture
def proxy_http(mistral_url: str) -> Iterator[httpx.Client]:
    """The proxy, in HTTP mode, in front of that server: the pinned build and the emulator are mistral.rs 0.8.1,
    whose logprobs are base-10; your own server's base is MISTRAL_LOGPROB_BASE's (default e)."""
    base = os.environ.get("MISTRAL_LOGPROB_BASE", "e") if os.environ.get("TEST_MISTRAL_URL") else "10"
    settings = Settings(mistral_url=mistral_url, mistral_logprob_base=10.0 if base == "10" else math.e)
    with serve_in_thread(create_app(settings)) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=120) as http:
            yield http


@pytest.fixture
def model(proxy_http: httpx.Client) -> str:
    """The first model the server lists, under the name the proxy gives it."""
    name: str = proxy_http.get("/api/tags").json()["models"][0]["name"]
    return name
