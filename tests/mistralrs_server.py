"""The real mistral.rs server (the pinned build of ``scripts/build-programs.sh mistralrs``), serving the default
SmolLM2 GGUF the embedded engine uses, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.upstream.embedded import default_cache_dir, resolve
from scripts.stack import free_port
from tests.programs import programs

__all__ = ["mistralrs_binary", "running_mistralrs"]

_START_TIMEOUT = 180.0


def mistralrs_binary() -> Path | None:
    binary = programs() / "mistralrs"
    return binary if binary.exists() else None


@contextmanager
def running_mistralrs(binary: Path, log: Path) -> Iterator[str]:
    """``mistralrs serve`` with the default model; yields its URL once ``/health`` answers."""
    spec = resolve(None, default_cache_dir())
    # mistral.rs names the model after the folder given: a folder of its own, holding only the file.
    folder = log.parent / "smollm2-135m"
    folder.mkdir(exist_ok=True)
    (folder / (spec.filename or "")).unlink(missing_ok=True)
    (folder / (spec.filename or "")).symlink_to(Path(spec.location) / (spec.filename or ""))
    port = free_port()
    command = [str(binary), "serve", "-p", str(port), "--host", "127.0.0.1", "--cpu", "--format", "gguf",
               "-m", str(folder), "-f", spec.filename or ""]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mistralrs serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mistralrs serve did not become healthy in {_START_TIMEOUT:g} s: {log.read_text()[-2000:]}")
