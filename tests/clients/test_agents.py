"""The coding agents that use Ollama's newer routes, run headless as their users run them (npm, tests/js): Claude Code
on ``/v1/messages`` and Codex on ``/v1/responses``, against the proxy (API keys on) in front of the emulator.

Each sends what it sends to any server: a system prompt of several thousand tokens, its whole tool set, a stream. The
emulator answers every chat with the same sentence, which each agent must print as its answer."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings
from otel.setup import Telemetry
from tests.emulator import Emulator
from tests.servers import Server, serve_in_thread

BIN = Path(__file__).parents[1] / "js" / "node_modules" / ".bin"
KEY = "agent-test-key"
HELLO = "Hello from the emulator."


@pytest.fixture
def keyed(settings: Settings, telemetry: Telemetry) -> Iterator[Server]:
    """The proxy as a team would expose it to agents: API keys required."""
    with serve_in_thread(create_app(Settings(mistral_url=settings.mistral_url, api_keys=(KEY,)), telemetry=telemetry)
                         ) as server:  # fmt: skip
        yield server


def _agent(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is required: run `npm ci --prefix tests/js` (.ci/run does)")
    return str(path)


def _run(command: list[str], env: dict[str, str], home: Path) -> str:
    # A home of its own: neither agent reads or writes the user's settings, sessions or credentials.
    base = {key: os.environ[key] for key in ("PATH", "LANG") if key in os.environ}
    done = subprocess.run(command, env={**base, **env, "HOME": str(home)}, cwd=home, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, f"{command[0]} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_claude_code_answers_a_prompt_through_v1_messages(keyed: Server, emulator: Emulator, tmp_path: Path) -> None:
    env = {"ANTHROPIC_BASE_URL": keyed.url, "ANTHROPIC_API_KEY": KEY, "DISABLE_TELEMETRY": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}  # fmt: skip
    out = _run([_agent("claude"), "-p", "Say hello", "--model", "mistral-7b"], env, tmp_path)
    assert out.strip().splitlines()[-1] == HELLO
    [sent] = [request.body for request in emulator.requests if request.body and request.body.get("tools")]
    assert (sent["model"], sent["stream"], sent["messages"][0]["role"]) == ("mistral-7b", True, "system")
    assert {"Bash", "Read", "Edit"} <= {tool["function"]["name"] for tool in sent["tools"]}


def test_codex_answers_a_prompt_through_v1_responses(keyed: Server, emulator: Emulator, tmp_path: Path) -> None:
    codex_home = tmp_path / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "mistral-7b"\nmodel_provider = "proxy"\n\n[model_providers.proxy]\nname = "mistral-ollama-proxy"\n'
        f'base_url = "{keyed.url}/v1"\nwire_api = "responses"\nenv_key = "PROXY_API_KEY"\n'
    )
    env = {"CODEX_HOME": str(codex_home), "PROXY_API_KEY": KEY}
    out = _run([_agent("codex"), "exec", "--skip-git-repo-check", "Say hello"], env, tmp_path)
    assert out.strip().splitlines()[-1] == HELLO
    [sent] = [request.body for request in emulator.requests if request.body and request.body.get("tools")]
    assert (sent["model"], sent["stream"]) == ("mistral-7b", True)
    assert [message["role"] for message in sent["messages"]][-1] == "user"
    assert "system" in {message["role"] for message in sent["messages"]}  # Codex's "developer" instructions
