"""The peer a user would pick instead: the LiteLLM proxy, in its own virtualenv, in front of the stand-in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv-litellm"
EXECUTABLE = VENV / "bin" / "litellm"
READY_PATH = "/health/liveliness"
# No network look-up of the model cost map at start-up, errors only in the log, and no authentication (LiteLLM
# refuses to start without a master key unless told; the proxy under test runs without API keys too).
ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
}


def ensure(log: Path, timeout: float = 1800.0) -> str | None:
    """Create the virtualenv and install ``litellm[proxy]`` unless present; the reason on failure, else None."""
    if EXECUTABLE.exists():
        return None
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
    ]
    with log.open("ab") as output:
        for index, step in enumerate(steps):
            print(f"litellm: {' '.join(step)} (log: {log})", flush=True)
            try:
                subprocess.run(step, stdout=output, stderr=subprocess.STDOUT, check=True, timeout=timeout)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                return f"{' '.join(step[:3])} failed ({exc}): {' / '.join(tail)}"
            if index == 0:  # keep the virtualenv out of git and of linters run on bench/
                (VENV / ".gitignore").write_text("*\n")
    return None if EXECUTABLE.exists() else f"{EXECUTABLE} missing after the install"


def version() -> str:
    result = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or "unknown"


def write_config(path: Path, upstream: str, model: str) -> Path:
    """One OpenAI-compatible deployment: the stand-in, under the model name the benchmark asks for."""
    path.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-bench\n"
    )
    return path


def command(config: Path, port: int) -> list[str]:
    return [str(EXECUTABLE), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
