"""Smoke tests of the benchmark's tools: the stand-in answers in mistral.rs's shapes and the load generator counts;
the embedded-mode benchmark measures both paths on the tiny model."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import free_port
from tests.tiny_model import build_tiny_model

BENCH = Path(__file__).resolve().parent.parent / "bench"
_USAGE = [
    "completion_tokens",
    "prompt_tokens",
    "total_tokens",
    "avg_tok_per_sec",
    "avg_prompt_tok_per_sec",
    "avg_compl_tok_per_sec",
    "total_time_sec",
    "total_prompt_time_sec",
    "total_completion_time_sec",
]
_TOP = ["id", "choices", "created", "model", "system_fingerprint", "object", "usage"]


def _request(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@pytest.fixture
def standin() -> Iterator[int]:
    port = free_port()
    command = [sys.executable, str(BENCH / "standin.py"), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if _request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _load(port: int, stream: bool) -> dict[str, Any]:
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    command = [
        *(sys.executable, str(BENCH / "load.py"), "--url", f"http://127.0.0.1:{port}/v1/chat/completions"),
        *("--body", json.dumps({**body, "max_tokens": 20}), "--concurrency", "2"),
        *("--duration", "1", "--warmup", "0.2", "--cpu", "-1"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _check_chunk(chunk: dict[str, Any], last: bool) -> None:
    assert list(chunk) == _TOP
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["system_fingerprint"] == "local"
    (choice,) = chunk["choices"]
    assert list(choice) == ["finish_reason", "index", "delta", "logprobs"]
    assert list(choice["delta"]) == ["content", "role", "tool_calls"]
    assert (choice["finish_reason"] is not None) is last
    assert (chunk["usage"] is not None) is last


def test_standin_and_load_generator(standin: int) -> None:
    for stream in (False, True):
        result = _load(standin, stream)
        assert result["requests"] > 0 and result["errors"] == 0, result
        assert result["chunks_per_request"] == (20 if stream else 1)

    status, content_type, body = _request(standin, "POST", "/v1/chat/completions", {"messages": [], "max_tokens": 3})
    completion = json.loads(body)
    assert (status, content_type) == (200, "application/json")
    assert list(completion) == _TOP and completion["object"] == "chat.completion"
    assert list(completion["usage"]) == _USAGE and completion["usage"]["completion_tokens"] == 3
    assert list(completion["choices"][0]["message"]) == ["content", "role", "tool_calls"]

    stream_body = {"messages": [], "max_tokens": 5, "stream": True}
    status, content_type, body = _request(standin, "POST", "/v1/chat/completions", stream_body)
    events = [event.removeprefix("data: ") for event in body.decode().split("\n\n") if event]
    assert (status, content_type, events[-1]) == (200, "text/event-stream", "[DONE]")
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) == 5 and len({chunk["id"] for chunk in chunks}) == 1
    for index, chunk in enumerate(chunks):
        _check_chunk(chunk, last=index == 4)
    assert list(chunks[-1]["usage"]) == _USAGE

    models = json.loads(_request(standin, "GET", "/v1/models")[2])
    assert [(m["id"], m.get("status")) for m in models["data"]] == [("default", None), ("bench-model", "loaded")]
    assert _request(standin, "GET", "/health")[2] == b"OK"


def test_embedded_benchmark_measures_both_paths(tmp_path: Path) -> None:
    model, output = build_tiny_model(tmp_path / "tiny"), tmp_path / "results.md"
    command = [sys.executable, str(BENCH / "embedded.py"), "--quick", "--model", str(model), "--output", str(output)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {
        cells[0]: cells[1:]
        for line in output.read_text().splitlines()
        if line.startswith("| ") and (cells := [cell.strip() for cell in line.strip("|").split("|")])[0] in ("1", "4")
    }
    assert list(rows) == ["1", "4"]
    for direct, proxy, ratio, per_request in rows.values():
        assert float(direct) > 0 and float(proxy) > 0 and float(ratio.removesuffix("×")) > 0
        assert per_request == "8 / 8"  # the tiny model never stops early: both paths generate --tokens


def test_the_profile_attributes_each_busy_sample_to_the_innermost_known_component() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import cpu_profile
    finally:
        sys.path.remove(str(BENCH))
    root, site, lib = str(BENCH.parent), "/venv/lib/python3.11/site-packages", "/usr/lib/python3.11"
    loop = f"_run ({root}/app/commands/serve.py:151);run ({lib}/asyncio/runners.py:118)"
    route = f"{loop};chat ({root}/app/routes/generation.py:51)"
    post = f"{route};post ({site}/httpx/_client.py:1859)"
    thread = f"_bootstrap ({lib}/threading.py:1002)"
    collapsed = [
        f"{post};record ({site}/opentelemetry/sdk/metrics/_internal/instrument.py:321) 3",
        f"{post};_send ({site}/httpx/_client.py:1730) 2",
        f"{route};rfc3339_utc ({root}/app/ollama/translate/stream.py:48) 1",
        f"{loop};_run_once ({lib}/asyncio/base_events.py:1900) 1",
        f"{thread};BatchProcessor.worker ({site}/opentelemetry/sdk/_shared_internal/__init__.py:162);"
        f"encode ({site}/opentelemetry/exporter/otlp/proto/common/_internal/__init__.py:77) 2",
        f"{thread};wait ({lib}/threading.py:331) 40",
    ]
    busy, table = cpu_profile.shares(collapsed)
    assert busy == 9  # the parked thread is not work
    assert table == [
        ("OpenTelemetry SDK: metrics", 3 / 9),
        ("httpx (upstream client API)", 2 / 9),
        ("OpenTelemetry export threads (encode + send)", 2 / 9),
        ("app/ (translation, limits, routes)", 1 / 9),
        ("event loop, asyncio, stdlib", 1 / 9),
    ]


def test_the_session_soak_counts_a_prompt_being_read_as_work_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the GGUF engine a request waits behind the prompt another is reading, not only behind full slots: that
    is work ahead while the other's client waits, and waste once it has gone."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    import session_soak as soak  # type: ignore[import-not-found]

    from tests.sessions import Call

    s = 1_000_000_000
    gone = Call(1, 0, "tags", {"stream": False}, "leave", 5.0, 0, 21, ended=40 * s)
    waiting = Call(2, 0, "chat", {"stream": True}, "answer", 0.0, 0, 21, ended=80 * s)
    intervals = soak.Intervals()
    intervals.servers = {gone.trace: 0, waiting.trace: 10 * s}
    spans = {gone.trace: (0, 100 * s), waiting.trace: (60 * s, 80 * s)}
    intervals.read = {gone.trace: 60 * s, waiting.trace: 65 * s}
    found = {}
    for leg in (soak.IN_PROCESS, soak.HTTP):
        intervals.services = {leg.service: spans}
        outcome = soak.Outcome(leg, [gone, waiting], {}, [], 0.0, 0.0, 0.0, intervals)
        found[leg.name] = [(w.call.number, w.wait, w.live_ahead) for w in soak.waits(outcome)]
    # In-process: from its arrival (10 s) to its slot (60 s), the other's prompt was read for a waiting client until
    # that client left (40 s): 30 s of work ahead, 20 s beyond. Over HTTP no prompt gate: four slots, one busy.
    assert found == {"in-process": [(2, 50.0, 30.0)], "http": [(2, 50.0, 0.0)]}
