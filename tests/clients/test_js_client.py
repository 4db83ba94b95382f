"""End to end: the official JavaScript client (npm ``ollama``, run by node) against the proxy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server

SCRIPT = Path(__file__).parents[1] / "js" / "client.mjs"
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@pytest.fixture
def js(proxy: Server) -> dict[str, Any]:
    if shutil.which("node") is None or not (SCRIPT.parent / "node_modules" / "ollama").is_dir():
        pytest.fail("node and tests/js/node_modules are required: run `npm ci --prefix tests/js` (.ci/run does)")
    done = subprocess.run(["node", str(SCRIPT), proxy.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _final(reply: dict[str, Any]) -> None:
    assert reply["done"] is True and reply["done_reason"] == "stop"
    assert all(isinstance(reply[name], int) for name in DURATIONS)
    assert (reply["prompt_eval_count"], reply["eval_count"]) == (4, 4)


def test_version_and_list(js: dict[str, Any]) -> None:
    assert js["version"] == {"version": "0.33.0"}
    assert [m["model"] for m in js["list"]["models"]] == ["mistral-7b:latest", "mistral:latest", "Qwen/Qwen3-4B:latest"]


def test_chat(js: dict[str, Any]) -> None:
    assert js["chat"]["message"] == {"role": "assistant", "content": "Hello from the emulator."}
    _final(js["chat"])
    stream = js["chatStream"]
    assert [p["message"]["content"] for p in stream] == ["Hello", " from", " the", " emulator.", ""]
    _final(stream[-1])


def test_generate(js: dict[str, Any]) -> None:
    assert js["generate"]["response"] == "Hello from the emulator."
    _final(js["generate"])
    assert "".join(p["response"] for p in js["generateStream"]) == "Hello from the emulator."
    _final(js["generateStream"][-1])


def test_unknown_model_is_a_response_error(js: dict[str, Any]) -> None:
    assert js["missing"] == {"name": "ResponseError", "message": "model 'no-such-model' not found", "status": 404}
