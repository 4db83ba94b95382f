"""The README's main job: ``mistral-ollama-proxy serve`` with no MISTRAL_URL runs SmolLM2 in-process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import ollama
import pytest

from app.main import create_app
from app.settings import Settings
from app.upstream.embedded import EmbeddedUpstream, resolve
from app.upstream.embedded.spec import DEFAULT_MODEL, default_cache_dir
from otel.telemetry import disabled
from tests.processes import free_port
from tests.servers import serve_in_thread
from tests.waiting import eventually


@pytest.mark.timeout(600)  # SmolLM2 on a CPU: a bound on a hang
def test_serve_runs_the_default_model_for_the_official_client() -> None:
    command = shutil.which("mistral-ollama-proxy")
    assert command, "the console script is installed by `pip install .`"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("MISTRAL_URL", "RUST_LOG")}
    process = subprocess.Popen(
        [command, "serve", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]  # printed once the model has loaded
        assert lines[0] == "engine: mistral.rs in-process (mistralrs 0.9.5), gguf model\n"
        assert lines[1].startswith("model: smollm2:135m from ") and "SmolLM2-135M-Instruct.Q4_1.gguf" in lines[1]
        assert lines[2] == f"mistral-ollama-proxy listening on http://127.0.0.1:{port} (Ollama API)\n"
        assert lines[3] == f"metrics: http://127.0.0.1:{port}/metrics\n"
        assert lines[4].startswith("open files: ")
        with ollama.Client(host=f"http://127.0.0.1:{port}") as client:
            assert [m.model for m in client.list().models] == ["smollm2:135m"]
            question = [{"role": "user", "content": "What is the capital of France?"}]
            reply = client.chat(model="smollm2:135m", messages=question, options={"num_predict": 24})
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stdout is not None
        process.stdout.close()
    assert reply.message.content and reply.message.content.strip()
    assert reply.eval_count is not None and reply.eval_count > 0
    assert reply.load_duration is not None and reply.load_duration > 0


@pytest.fixture(scope="module")
def smollm2() -> Iterator[tuple[EmbeddedUpstream, httpx.Client]]:
    engine = EmbeddedUpstream(resolve(DEFAULT_MODEL, default_cache_dir()))  # eight slots, one GGUF prompt at a time
    engine.load()
    with serve_in_thread(create_app(Settings(), telemetry=disabled(), upstream=engine)) as server:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            yield engine, http


@pytest.mark.timeout(600)  # SmolLM2 on a CPU: a bound on a hang
def test_identical_prompts_at_once_all_succeed_on_the_gguf_model(
    smollm2: tuple[EmbeddedUpstream, httpx.Client],
) -> None:
    # What users see with several GGUF slots. It does not prove the one-prompt-at-a-time rule: without it these passed
    # too (separate requests were not prefilled together here; only n_choices 2 shows mistralrs 0.9.5's bug).
    engine, http = smollm2
    body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Name a colour."}], "stream": False,
            "options": {"num_predict": 6, "temperature": 0}}  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: http.post("/api/chat", json=body), range(4)))
    assert [answer.status_code for answer in answers] == [200] * 4, [answer.text for answer in answers]
    assert len({answer.json()["message"]["content"] for answer in answers}) == 1  # greedy: the same text each time
    assert [answer.json()["eval_count"] for answer in answers] == [6] * 4
    assert (engine.slots.held, engine.active_streams) == (0, 0)


@pytest.mark.timeout(600)
def test_a_chat_is_answered_beside_seven_long_generations(smollm2: tuple[EmbeddedUpstream, httpx.Client]) -> None:
    # What Open WebUI needs: its background requests (a title, tags, follow-ups) may run for minutes on a small
    # model; a chat sent meanwhile gets a slot of its own instead of waiting behind them.
    engine, http = smollm2
    # Greedy, SmolLM2 counts on to num_predict: minutes at its speed with eight at once.
    long = {"model": DEFAULT_MODEL, "prompt": "Count from 1 to 1000, separated by commas.",
            "options": {"num_predict": 2000, "temperature": 0}}  # fmt: skip
    with ExitStack() as streams:
        # Each stream's line iterator is kept: a collected one closes its response, and the proxy ends that run.
        lines = [streams.enter_context(http.stream("POST", "/api/generate", json=long)).iter_lines() for _ in range(7)]
        assert [json.loads(next(each))["done"] for each in lines] == [False] * 7  # generating
        short = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": False,
                 "options": {"num_predict": 4, "temperature": 0}}  # fmt: skip
        answer = http.post("/api/chat", json=short)
        assert (answer.status_code, answer.json()["eval_count"]) == (200, 4)
        assert engine.active_streams == 7  # answered while the long ones still run
    eventually(lambda: (engine.slots.held, engine.active_streams) == (0, 0), within=30)


def test_ps_gives_the_context_length_of_the_gguf_file(smollm2: tuple[EmbeddedUpstream, httpx.Client]) -> None:
    _, http = smollm2
    [running] = http.get("/api/ps").json()["models"]
    assert (running["name"], running["context_length"]) == ("smollm2:135m", 8192)


def test_show_lists_the_header_as_ollama_does(smollm2: tuple[EmbeddedUpstream, httpx.Client]) -> None:
    # The values real Ollama 0.24 shows for this file (the differential test compares the rest).
    _, http = smollm2
    shown = http.post("/api/show", json={"model": "smollm2:135m"}).json()
    info = shown["model_info"]
    assert list(info) == sorted(info)
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert (info["llama.attention.layer_norm_rms_epsilon"], info["tokenizer.ggml.eos_token_id"]) == (1e-05, 2)
    arrays = ("general.languages", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.tokens")
    assert [info[key] for key in arrays] == [None] * 4  # even a one-item list, unless verbose
    assert (len(shown["tensors"]), shown["tensors"][0]) == (
        272, {"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]})  # fmt: skip
    verbose = http.post("/api/show", json={"model": "smollm2:135m", "verbose": True}).json()["model_info"]
    assert (verbose["general.languages"], len(verbose["tokenizer.ggml.tokens"])) == (["en"], 49152)
    assert verbose["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
