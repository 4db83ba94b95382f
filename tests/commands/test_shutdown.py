"""SIGTERM: stop accepting, let streams finish within the grace period, end the rest, flush telemetry."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.emulator import Emulator, Reply
from tests.otel.otlp_receiver import Received, http_receiver
from tests.processes import finish, free_port
from tests.servers import Server
from tests.tiny_model import build_tiny_model
from tests.waiting import eventually

CHAT = {"model": "mistral-7b", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    with http_receiver() as (endpoint, received):
        yield endpoint, received


def _serve(
    upstream: Server, grace: float, otlp: str, stderr: IO[str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    command = shutil.which("mistral-ollama-proxy")
    assert command
    port = free_port()
    env = {**os.environ, "MISTRAL_URL": upstream.url, "GRACEFUL_TIMEOUT_SECS": str(grace),
           "OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}  # fmt: skip
    process = subprocess.Popen([command, "serve", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
                               env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)  # fmt: skip
    assert process.stdout is not None
    for _ in range(3):
        process.stdout.readline()
    return process, f"http://127.0.0.1:{port}"


def test_streams_in_flight_finish_and_telemetry_is_flushed(
    upstream: Server, emulator: Emulator, receiver: tuple[str, Received]
) -> None:
    endpoint, received = receiver
    emulator.script(Reply(content="a b c d e", delay=0.2))
    process, url = _serve(upstream, 10.0, endpoint)
    try:
        with httpx.Client(base_url=url, timeout=30) as http, http.stream("POST", "/api/chat", json=CHAT) as response:
            lines = response.iter_lines()
            first = json.loads(next(lines))
            process.send_signal(signal.SIGTERM)
            with pytest.raises(httpx.ConnectError):  # no new connections once shutting down
                httpx.get(f"{url}/", timeout=2)
            rest = [json.loads(line) for line in lines]
    finally:
        process.send_signal(signal.SIGTERM)
        code = finish(process)
    assert first["message"]["content"] == "a"
    assert rest[-1]["done"] is True and rest[-1]["done_reason"] == "stop"
    assert code == 0
    assert "POST /api/chat" in {span.name for span in received.spans()}
    assert "mistral_http_requests" in {metric.name for metric in received.metric_list()}


def test_streams_past_the_grace_period_end_with_an_error_line(
    upstream: Server, emulator: Emulator, receiver: tuple[str, Received]
) -> None:
    endpoint, _ = receiver
    emulator.script(Reply(content=" ".join(["word"] * 40), delay=0.2))
    process, url = _serve(upstream, 0.5, endpoint)
    try:
        with httpx.Client(base_url=url, timeout=30) as http, http.stream("POST", "/api/chat", json=CHAT) as response:
            lines = response.iter_lines()
            next(lines)
            process.send_signal(signal.SIGTERM)
            rest = [json.loads(line) for line in lines]
    finally:
        code = finish(process)
    assert rest[-1] == {"error": "the server is shutting down"}
    assert not any(line.get("done") for line in rest)
    assert len(rest) < 20  # ended after about half a second, not after the 40 words
    assert code == 0
    assert emulator.active_streams == 0


def test_an_unreachable_collector_does_not_hold_the_exit(upstream: Server, tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process, url = _serve(upstream, 1.0, f"http://127.0.0.1:{free_port()}", stderr)
        try:
            assert httpx.post(f"{url}/api/chat", json={**CHAT, "stream": False}, timeout=30).status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            # The OTLP exporters retry each batch for 10 s; before the flush had a time limit this took 25 s.
            code = finish(process, timeout=10)
    assert code == 0
    warning = "telemetry not flushed within 5 s (is the OTLP endpoint reachable?); going on"
    assert warning in log.read_text()
    after = log.read_text().split(warning, 1)[1]
    assert " ERROR " not in after  # no exit hook went on exporting (and failing) once the proxy gave up


def test_a_whole_answer_in_process_past_the_grace_period_is_a_503_and_the_exit_is_clean(tmp_path: Path) -> None:
    """The serve command on the engine in-process, stopped while it generates a whole answer: the answer ends as
    Ollama's 503, the engine's sequence stops, and the process exits 0 (exiting under a running sequence aborts)."""
    model = build_tiny_model(tmp_path / "tiny")
    command = shutil.which("mistral-ollama-proxy")
    assert command
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("MISTRAL_URL", "RUST_LOG")}
    env |= {"MODEL": str(model), "GRACEFUL_TIMEOUT_SECS": "0.5", "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "prometheus", "OTEL_LOGS_EXPORTER": "none"}  # fmt: skip
    process = subprocess.Popen([command, "serve", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    stopping = False
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the engine line: printed once the model has loaded
        url = f"http://127.0.0.1:{port}"
        eventually(lambda: _answers(url), within=60)
        body = {"model": "tiny", "messages": CHAT["messages"], "stream": False, "options": {"num_predict": 1500}}
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(httpx.post, f"{url}/api/chat", json=body, timeout=60)
            eventually(lambda: _generating(url), within=60)
            process.send_signal(signal.SIGTERM)
            stopping = True
            response = answer.result(60)
    finally:
        if not stopping:  # a second SIGTERM while it drains would end it without its clean exit
            process.send_signal(signal.SIGTERM)
        code = finish(process)
    assert (response.status_code, response.json()) == (503, {"error": "the server is shutting down"})
    assert response.headers["retry-after"] == "5"
    assert code == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _generating(url: str) -> bool:
    """A request in flight, as the in-flight gauge says."""
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    return re.search(r"^mistral_active_requests(\{[^}]*\})? 1\.0$", metrics, re.MULTILINE) is not None
