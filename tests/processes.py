"""The proxy's own command as the tests start it: where it is, a free port for it, and how it ended."""

from __future__ import annotations

import shutil
import subprocess

from scripts.stack import free_port

__all__ = ["cli", "finish", "free_port"]


def cli() -> str:
    """The path of the `mistral-ollama-proxy` console script."""
    command = shutil.which("mistral-ollama-proxy")
    assert command, "the console script is installed by `pip install .`"
    return command


def finish(process: subprocess.Popen[str], timeout: float = 30) -> int:
    """The exit code of a process told to stop, with its stdout pipe closed."""
    code = process.wait(timeout=timeout)
    assert process.stdout is not None
    process.stdout.close()
    return code
