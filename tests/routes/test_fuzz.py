"""Fuzz the Ollama request schemas over real HTTP: whatever a client sends, never a 5xx, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import Server

# The proxy under test runs in this process, and OpenTelemetry draws trace ids from `random`.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ROLE = st.sampled_from(["system", "user", "assistant", "tool", "USER", "bot", ""]) | JSON
MESSAGE = st.fixed_dictionaries(
    {"role": ROLE},
    optional={"content": st.text(max_size=30) | JSON, "images": st.lists(st.text(max_size=12)) | JSON,
              "tool_calls": JSON, "tool_name": JSON, "thinking": JSON},
)  # fmt: skip
OPTIONS = st.dictionaries(
    st.sampled_from(["num_predict", "temperature", "top_p", "top_k", "min_p", "stop", "seed", "repeat_penalty",
                     "mirostat", "num_ctx", "tfs_z", "unknown"]),
    JSON | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(),
    max_size=5,
)  # fmt: skip
COMMON = {"model": st.sampled_from(["mistral", "MISTRAL:latest", "nope", ""]) | JSON, "stream": JSON,
          "options": OPTIONS | JSON, "keep_alive": st.sampled_from([0, "5m", "-1", "soon", 3.5]) | JSON,
          "format": st.sampled_from(["json", "", "xml"]) | JSON, "think": JSON}  # fmt: skip
CHAT = st.fixed_dictionaries({}, optional={**COMMON, "messages": st.lists(MESSAGE, max_size=3) | JSON, "tools": JSON})
GENERATE = st.fixed_dictionaries(
    {}, optional={**COMMON, "prompt": st.text(max_size=20) | JSON, "system": JSON, "suffix": JSON, "raw": JSON,
                  "images": JSON, "context": JSON, "template": JSON}
)  # fmt: skip


def _post(http: httpx.Client, path: str, body: Any) -> None:
    response = http.post(path, content=json.dumps(body, allow_nan=True).encode())
    assert response.status_code < 500 or response.status_code in (502, 503, 504), (path, body, response.text)
    text = response.text
    assert "Traceback" not in text
    if response.headers["content-type"].startswith("application/json"):
        assert isinstance(response.json(), dict)
    else:
        for line in text.splitlines():
            assert isinstance(json.loads(line), dict)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=CHAT)
def test_chat_never_fails_on_any_input(http: httpx.Client, body: dict[str, Any]) -> None:
    _post(http, "/api/chat", body)


@FUZZ
@given(body=GENERATE)
def test_generate_never_fails_on_any_input(http: httpx.Client, body: dict[str, Any]) -> None:
    _post(http, "/api/generate", body)


@FUZZ
@given(body=JSON, path=st.sampled_from(["/api/show", "/api/embed", "/api/embeddings", "/api/pull", "/api/copy",
                                          "/v1/chat/completions", "/v1/completions", "/v1/embeddings"]))  # fmt: skip
def test_other_routes_never_fail_on_any_json(http: httpx.Client, body: Any, path: str) -> None:
    _post(http, path, body)


@pytest.mark.parametrize("raw", [b"\xff\xfe", b'{"model": "\\ud800"}', b"[" * 10000, b"1e999999", b'{"a":' * 500])
def test_hostile_bytes(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/api/chat", content=raw)
    assert response.status_code == 400 and "error" in response.json()


def test_proxy_fixture_is_real_http(proxy: Server) -> None:
    assert proxy.url.startswith("http://127.0.0.1:")
