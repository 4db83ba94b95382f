"""Ollama's own integration suite against the proxy: the compiled ``integration`` package of the pinned Ollama
module (``scripts/build-programs.sh ollama-integration``), pointed at the proxy with ``OLLAMA_TEST_EXISTING=1``,
SmolLM2 in-process standing in for every model the suite names.

Only the groups one small chat model on a CPU can answer are run (``TestAPI``, ``TestBasic``, ``TestChat``);
within them the suite skips what the model lacks (thinking, a named model). The README's table says why each
of the rest is left out.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from app.main import create_app, make_upstream
from app.settings import Settings
from otel.telemetry import disabled
from tests.programs import programs
from tests.servers import Server, serve_in_thread

MODEL = "smollm2:135m"
GROUPS = "^(TestAPI|TestBasic|TestChat)$"
# Each case's own result (a case's subtests stand for it); the README says why the other groups are not run.
EXPECTED = {
    "TestAPI/api-generate/smollm2:135m/stream": "PASS",
    "TestAPI/api-generate/smollm2:135m/no_stream": "PASS",
    "TestAPI/api-chat/smollm2:135m/stream": "PASS",
    "TestAPI/api-chat/smollm2:135m/no_stream": "PASS",
    "TestAPI/api-list-models": "SKIP",  # "skipping metadata test with model override"
    "TestAPI/api-show-model/llama3.2": "SKIP",  # the same
    "TestAPI/generate-logprobs/smollm2:135m/no_logprobs": "PASS",
    "TestAPI/generate-logprobs/smollm2:135m/logprobs_only": "PASS",
    "TestAPI/generate-logprobs/smollm2:135m/logprobs_with_top_5": "PASS",
    "TestAPI/chat-logprobs/smollm2:135m": "PASS",
    "TestBasic/blue-sky/smollm2:135m": "PASS",
    "TestBasic/num-predict/llama3.2:1b": "SKIP",  # "uses hardcoded model, not applicable with model override"
    "TestBasic/thinking-enabled/smollm2:135m/smollm2:135m": "SKIP",  # SmolLM2 cannot think
    "TestBasic/thinking-suppressed/smollm2:135m/smollm2:135m": "SKIP",
    "TestChat/chat/smollm2:135m": "PASS",
}
_RESULT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def proxy() -> Iterator[Server]:
    settings, telemetry = Settings(), disabled()
    with serve_in_thread(create_app(settings, upstream=make_upstream(settings, telemetry))) as server:
        yield server


def _run_suite(proxy: Server) -> str:
    suite = (programs() / "ollama-integration").resolve()
    env = {**os.environ, "OLLAMA_TEST_EXISTING": "1", "OLLAMA_HOST": proxy.url.removeprefix("http://"),
           "OLLAMA_TEST_MODEL": MODEL}  # fmt: skip
    done = subprocess.run(
        [str(suite), "-test.v", "-test.count", "1", "-test.timeout", "15m", "-test.run", GROUPS],
        cwd=suite.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200,
    )  # fmt: skip
    return done.stdout


def _leaves(results: dict[str, str]) -> dict[str, str]:
    """Each case's own result: a group or case whose subtests report is left out."""
    return {name: result for name, result in results.items() if not any(n.startswith(f"{name}/") for n in results)}


# its own cases run up to 15 minutes (-test.timeout), SmolLM2 on a CPU
@pytest.mark.timeout(1500)
def test_ollamas_own_integration_suite_passes_against_the_proxy(proxy: Server) -> None:
    output = _run_suite(proxy)
    results = _leaves({name: result for result, name in _RESULT.findall(output)})
    failed = sorted(name for name, result in results.items() if result == "FAIL")
    assert not failed, f"failed: {failed}\n{output[-6000:]}"
    assert results == EXPECTED, output[-6000:]
