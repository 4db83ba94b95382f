"""The real ``ollama`` CLI (built at the release whose API the proxy claims) as a client of the proxy."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.emulator import Emulator, Reply
from tests.programs import program
from tests.servers import Server

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def ollama(proxy: Server) -> Iterator[tuple[str, dict[str, str]]]:
    yield program("ollama"), {**os.environ, "OLLAMA_HOST": proxy.url}


def _run(ollama: tuple[str, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    command, env = ollama
    done = subprocess.run([command, *args], env=env, capture_output=True, text=True, timeout=60)
    done.stderr = ANSI.sub("", done.stderr)
    return done


def test_list_and_ps_show_the_served_models(ollama: tuple[str, dict[str, str]]) -> None:
    listed = _run(ollama, "list")
    assert listed.returncode == 0
    rows = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert listed.stdout.split()[:4] == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert rows == ["mistral-7b:latest", "mistral:latest", "Qwen/Qwen3-4B:latest"]
    running = _run(ollama, "ps")
    assert running.returncode == 0
    assert [line.split()[0] for line in running.stdout.splitlines()[1:]] == ["mistral-7b:latest", "mistral:latest"]


def test_show_with_its_flags(ollama: tuple[str, dict[str, str]]) -> None:
    details = _run(ollama, "show", "mistral")
    assert details.returncode == 0
    assert re.search(r"architecture\s+mistral", details.stdout) and "Capabilities" in details.stdout
    modelfile = _run(ollama, "show", "mistral", "--modelfile")
    assert modelfile.returncode == 0 and "\nFROM mistral-7b\n" in modelfile.stdout
    template = _run(ollama, "show", "mistral", "--template")
    assert (template.returncode, template.stdout) == (0, "{{ .Prompt }}")
    parameters = _run(ollama, "show", "mistral", "--parameters")
    assert parameters.returncode == 0
    shown = [line.split() for line in parameters.stdout.strip().splitlines()]
    assert shown == [["repeat_penalty", "1.1"], ["temperature", "0.8"], ["top_k", "40"], ["top_p", "0.9"]]


def test_pull_succeeds_for_a_served_model_and_explains_otherwise(ollama: tuple[str, dict[str, str]]) -> None:
    pulled = _run(ollama, "pull", "mistral")
    assert pulled.returncode == 0 and pulled.stderr.split() == ["pulling", "manifest", "success"]
    missing = _run(ollama, "pull", "llama3")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error: 404 : model 'llama3' not found: this server cannot pull models; models are managed by mistral.rs, "
        "not through this API"
    )


def test_run_with_a_prompt_verbose_and_json(ollama: tuple[str, dict[str, str]], emulator: Emulator) -> None:
    answered = _run(ollama, "run", "mistral", "hi", "--verbose")
    assert (answered.returncode, answered.stdout) == (0, "Hello from the emulator.\n\n")
    stats = dict(line.split(":", 1) for line in answered.stderr.strip().splitlines() if ":" in line)
    assert list(stats) == ["total duration", "load duration", "prompt eval count", "prompt eval duration",
                           "prompt eval rate", "eval count", "eval duration", "eval rate"]  # fmt: skip
    assert stats["eval count"].strip() == "4 token(s)" and stats["prompt eval count"].strip() == "4 token(s)"
    emulator.script(Reply(content='{"answer": 42}'))
    as_json = _run(ollama, "run", "mistral", "answer in JSON", "--format", "json")
    assert (as_json.returncode, as_json.stdout) == (0, '{"answer": 42}\n\n')
    sent = [r.body for r in emulator.requests if r.path == "/v1/chat/completions"][-1]
    assert sent["response_format"] == {"type": "json_object"}


def test_stop_unloads_the_model_in_mistralrs(ollama: tuple[str, dict[str, str]], emulator: Emulator) -> None:
    stopped = _run(ollama, "stop", "mistral")
    assert (stopped.returncode, stopped.stdout) == (0, "")
    assert [r.body for r in emulator.requests if r.path == "/v1/models/unload"] == [{"model_id": "mistral-7b"}]


def test_an_interactive_session_through_a_terminal(ollama: tuple[str, dict[str, str]]) -> None:
    command, env = ollama
    controller, terminal = os.openpty()
    process = subprocess.Popen([command, "run", "mistral"], env=env, stdin=terminal, stdout=terminal,
                               stderr=terminal, close_fds=True)  # fmt: skip
    os.close(terminal)
    try:
        assert ">>> " in _read_until(controller, ">>> ")
        os.write(controller, b"hi\r")
        answer = _read_until(controller, "Hello from the emulator.")
        if ">>> " not in answer.split("Hello from the emulator.", 1)[1]:  # the next prompt may come in the same read
            _read_until(controller, ">>> ")
        os.write(controller, b"/bye\r")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)


def _read_until(fd: int, text: str, timeout: float = 30.0) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while text not in ANSI.sub("", seen):
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not seen; the terminal showed {ANSI.sub('', seen)!r}"
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 4096).decode("utf-8", "replace")
    return ANSI.sub("", seen)
