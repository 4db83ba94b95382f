"""Chats without options, as Open WebUI sends them (issue 21): how the answers end, through the proxy on the default
SmolLM2 in-process and through the real Ollama serving the same GGUF with its own defaults.

    python bench/no_options.py [--runs 4] [--limit 300] [--output bench/results-no-options.md]

A measurement, not a test: the in-process engine cannot be seeded per request (the ``mistralrs`` binding has no
``seed``), so one answer says little and the distribution over several is what compares. Each prompt is sent
``--runs`` times to each server, one request at a time; an answer that is not back within ``--limit`` seconds
counts as ``timeout`` (it was running away). Ollama's model is created from a Modelfile with only ``FROM`` the
file, so it samples with Ollama's built-in defaults, the ones the proxy now applies.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.stack import build_programs, free_port  # noqa: E402

MODEL = "smollm2:135m"
PROMPTS = ["What is the capital of France?", "Say hello.", "Name three colors."]


def _wait(url: str, process: subprocess.Popen[bytes], within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")


def _ask(url: str, prompt: str, limit: float) -> tuple[str, int | None]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": False}
    try:
        reply: dict[str, Any] = httpx.post(f"{url}/api/chat", json=body, timeout=limit).json()
    except httpx.TimeoutException:
        return "timeout", None
    return str(reply.get("done_reason", reply.get("error"))), reply.get("eval_count")


def _measure(url: str, runs: int, limit: float) -> dict[str, tuple[Counter[str], list[int]]]:
    results: dict[str, tuple[Counter[str], list[int]]] = {}
    for prompt in PROMPTS:
        reasons: Counter[str] = Counter()
        counts: list[int] = []
        for _ in range(runs):
            reason, count = _ask(url, prompt, limit)
            reasons[reason] += 1
            counts += [count] if count is not None else []
        results[prompt] = (reasons, counts)
        print(url, prompt, dict(reasons), counts, flush=True)
    return results


def _proxy(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("MISTRAL_URL", "MODEL")}
    env |= {"OTEL_SDK_DISABLED": "true", "ACCESS_LOG": "false"}
    with (home / "proxy.log").open("wb") as log:
        process = subprocess.Popen(["mistral-ollama-proxy", "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def _ollama(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    from app.upstream.embedded import default_cache_dir, resolve

    binary = build_programs() / "ollama-server"
    port = free_port()
    env = {**os.environ, "HOME": str(home), "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(home / "models")}
    with (home / "ollama.log").open("wb") as log:
        process = subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait(f"http://127.0.0.1:{port}", process)
    gguf = resolve(None, default_cache_dir())
    (home / "Modelfile").write_text(f"FROM {gguf.location}/{gguf.filename}\n")
    subprocess.run([str(binary), "create", MODEL, "-f", str(home / "Modelfile")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def _table(name: str, results: dict[str, tuple[Counter[str], list[int]]]) -> list[str]:
    rows = []
    for prompt, (reasons, counts) in results.items():
        ended = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
        median = statistics.median(counts) if counts else "—"
        rows.append(f"| {name} | {prompt} | {ended} | {median} | {max(counts) if counts else '—'} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--limit", type=float, default=300.0)
    parser.add_argument("--output", default=str(Path(__file__).with_name("results-no-options.md")))
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, start in (("proxy (in-process)", _proxy), ("Ollama 0.24.0", _ollama)):
            process, url = start(Path(scratch))
            try:
                _wait(url, process)
                rows += _table(name, _measure(url, args.runs, args.limit))
            finally:
                process.terminate()
                process.wait(30)
    lines = [
        f"# Chats without options ({datetime.date.today().isoformat()}, `bench/no_options.py --runs {args.runs}`)",
        "",
        "| server | prompt | done_reason (of runs) | median eval_count | max eval_count |",
        "|---|---|---|---|---|",
        *rows,
    ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
