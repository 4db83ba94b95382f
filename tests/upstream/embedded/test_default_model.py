"""The README's main job: ``mistral-ollama-proxy serve`` with no MISTRAL_URL runs SmolLM2 in-process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import ollama
import pytest

from tests.test_cli import _free_port


@pytest.mark.timeout(600)  # SmolLM2 on a CPU: a bound on a hang
def test_serve_runs_the_default_model_for_the_official_client() -> None:
    command = shutil.which("mistral-ollama-proxy")
    assert command, "the console script is installed by `pip install .`"
    port = _free_port()
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
