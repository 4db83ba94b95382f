"""``mistral-ollama-proxy serve``, as the README runs it."""

from __future__ import annotations

import math
import os
import re
import resource
import signal
import subprocess
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from app.commands import main
from app.commands.serve import BACKLOG
from tests.processes import cli, finish, free_port
from tests.servers import Server
from tests.waiting import eventually


def test_serve_answers_ollama_clients_and_stops_on_sigterm(upstream: Server) -> None:
    port = free_port()
    env = {**os.environ, "MISTRAL_URL": upstream.url}
    process = subprocess.Popen(
        [cli(), "serve", "--bind", f"127.0.0.1:{port}", "--model-aliases", "mistral:latest=mistral-7b"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == f"mistral-ollama-proxy listening on http://127.0.0.1:{port} (Ollama API)\n"
        assert process.stdout.readline() == f"upstream: mistral.rs at {upstream.url}\n"
        assert process.stdout.readline() == f"metrics: http://127.0.0.1:{port}/metrics\n"
        assert process.stdout.readline().startswith("open files: ")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/").text == "Ollama is running"
            assert [m["model"] for m in http.get("/api/tags").json()["models"]][:2] == [
                "mistral-7b:latest",
                "mistral:latest",
            ]
        # A listening socket's Send-Q is its backlog (capped by the kernel's somaxconn).
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
        assert [int(line.split()[2]) for line in listening.stdout.splitlines()] == [min(BACKLOG, somaxconn)]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None
        process.stdout.close()


def test_a_model_that_cannot_load_is_a_message_and_a_nonzero_exit(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "MISTRAL_URL"}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    command = [cli(), "serve", "--model", str(broken), "--bind", f"127.0.0.1:{free_port()}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("mistral-ollama-proxy: mistral.rs could not load broken: ")
    assert "Traceback" not in done.stderr


def test_a_corrupt_gguf_is_one_line_even_with_rust_backtraces_on(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "MISTRAL_URL"}, "RUST_BACKTRACE": "1"}
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    command = [cli(), "serve", "--model", str(corrupt), "--bind", f"127.0.0.1:{free_port()}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("mistral-ollama-proxy: mistral.rs could not load corrupt: ")
    assert "stack backtrace" not in done.stdout + done.stderr and len(done.stderr.splitlines()) <= 3


def test_a_missing_model_says_how_to_provide_one(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "MISTRAL_URL"}
    done = subprocess.run([cli(), "serve", "--model", str(tmp_path / "nothing.gguf")], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        f"mistral-ollama-proxy: no model at {tmp_path / 'nothing.gguf'}; provide a model with --model (or MODEL): "
        "a .gguf file, a model directory (config.json, *.safetensors, tokenizer.json), or a Hugging Face id when "
        "online; or set MISTRAL_URL to use a mistral.rs server\n"
    )


def test_invalid_configuration_is_a_message_not_a_traceback() -> None:
    env = {**os.environ, "MISTRAL_URL": "http://x", "REQUEST_TIMEOUT_SECS": "soon"}
    done = subprocess.run([cli(), "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("mistral-ollama-proxy: invalid configuration: ")
    assert "Traceback" not in done.stderr


def test_a_mistral_url_without_a_scheme_is_refused_at_start() -> None:
    env = {**os.environ, "MISTRAL_URL": "localhost:8080"}
    done = subprocess.run([cli(), "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "mistral-ollama-proxy: invalid configuration: MISTRAL_URL must be an http:// or https:// URL with a host, "
        "such as http://localhost:8080 (got 'localhost:8080')\n"
    )


def test_the_open_files_limit_is_raised_to_the_hard_limit_and_said(upstream: Server) -> None:
    port = free_port()

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    env = {**os.environ, "MISTRAL_URL": upstream.url}
    process = subprocess.Popen([cli(), "serve", "--bind", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, preexec_fn=low_soft_limit)  # fmt: skip
    try:
        assert process.stdout is not None
        assert [process.stdout.readline() for _ in range(4)][3] == "open files: 4096 (raised from 256)\n"
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        assert re.search(r"^Max open files\s+4096\s+4096\s+files", limits, re.MULTILINE), limits
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "Ollama is running"
    finally:
        process.send_signal(signal.SIGTERM)
        assert finish(process) == 0


def test_busy_port_is_a_clear_error(upstream: Server) -> None:
    env = {**os.environ, "MISTRAL_URL": upstream.url}
    done = subprocess.run(
        [cli(), "serve", "--bind", f"127.0.0.1:{upstream.port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert (
        done.stderr
        == f"mistral-ollama-proxy: cannot listen on 127.0.0.1:{upstream.port}: [Errno 98] Address already in use\n"
    )


def test_several_workers_without_otlp_metrics_refuse_to_start(upstream: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {"MISTRAL_URL": upstream.url}
    done = subprocess.run([cli(), "serve", "--workers", "2"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr == (
        "mistral-ollama-proxy: invalid configuration: 2 workers need metrics pushed by OTLP (set "
        "OTEL_EXPORTER_OTLP_ENDPOINT): each worker process has its own registry, so /metrics would answer with "
        "one worker's numbers at a time\n"
    )


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/").text == "Ollama is running"
    except httpx.TransportError:
        return False


def test_several_workers_push_metrics_and_serve_no_pull_endpoint(upstream: Server) -> None:
    port = free_port()
    env = {**os.environ, "MISTRAL_URL": upstream.url, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    command = [cli(), "serve", "--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "error"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[2] == "metrics: pushed by OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)\n"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            # Two processes importing the SDK and the app on a loaded two-core machine: a bound on a hang only.
            eventually(lambda: _answers(http), within=120.0, every=0.1)
            metrics = http.get("/metrics")
            assert metrics.status_code == 404
            assert metrics.text == "metrics are not served here: see OTEL_METRICS_EXPORTER and --workers"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stdout is not None
        process.stdout.close()


def test_every_mode_listens_on_loopback_by_default_as_ollama_does() -> None:
    from app.settings import Settings

    assert Settings.from_env({}, env_file=None).bind == "127.0.0.1:11434"
    assert Settings.from_env({"MISTRAL_URL": "http://m:8080"}, env_file=None).bind == "127.0.0.1:11434"
    assert Settings().bind == "127.0.0.1:11434"
    assert Settings.from_env({"BIND_ADDRESS": "0.0.0.0:9"}, env_file=None).bind == "0.0.0.0:9"


def test_each_bound_on_a_request_is_a_variable() -> None:
    from app.bounds import Bounds
    from app.settings import Settings

    variables = {"MAX_MESSAGES": "1", "MAX_IMAGES": "2", "MAX_IMAGE_BYTES": "3", "MAX_IMAGE_TOTAL_BYTES": "4",
                 "MAX_TOOLS": "5", "MAX_STOP_SEQUENCES": "6", "MAX_CONTENT_PARTS": "7", "MAX_EMBED_INPUTS": "8",
                 "MAX_BODY_ITEMS": "9"}  # fmt: skip
    assert Settings.from_env(variables, env_file=None).bounds == Bounds(1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert Settings.from_env({}, env_file=None).bounds == Bounds() == Settings().bounds
    assert Bounds() == Bounds(4096, 100, 20 * 2**20, 32 * 2**20, 128, 64, 256, 2048, 1_000_000)


@pytest.mark.parametrize(("value", "base"), [("", math.e), ("e", math.e), ("E", math.e), ("10", 10.0)])
def test_the_logprob_base_of_a_server_is_e_or_10(value: str, base: float) -> None:
    from app.settings import Settings

    assert Settings.from_env({"MISTRAL_LOGPROB_BASE": value}, env_file=None).mistral_logprob_base == base
    with pytest.raises(ValueError, match="MISTRAL_LOGPROB_BASE must be e or 10, not '2'"):
        Settings.from_env({"MISTRAL_LOGPROB_BASE": "2"}, env_file=None)


def test_serve_says_when_telemetry_is_off(upstream: Server) -> None:
    port = free_port()
    env = {**os.environ, "MISTRAL_URL": upstream.url, "OTEL_SDK_DISABLED": "true"}
    process = subprocess.Popen([cli(), "serve", "--bind", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE,
                               text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        assert [process.stdout.readline() for _ in range(3)][2] == "metrics: off (OTEL_SDK_DISABLED)\n"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/metrics").status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        code = finish(process, timeout=10)
    assert code == 0


def test_version_and_a_help_without_markup(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "--help"):
        with pytest.raises(SystemExit) as exited:
            main([flag])
        assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"mistral-ollama-proxy {version('mistral-ollama-proxy')}\n")
    assert "usage: mistral-ollama-proxy" in out and "``" not in out
