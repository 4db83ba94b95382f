"""Open WebUI in a real browser against the proxy, both run as their users run them.

The proxy is ``mistral-ollama-proxy serve`` on the in-process default model (SmolLM2). Open WebUI is the pinned PyPI
release in a virtual environment of its own (``scripts/build-programs.sh open-webui``: several GB, torch included),
offline and otherwise on its defaults but one (function calling, see OPEN_WEBUI_ENV): title, follow-up and tag
generation stay on, so each chat shares the engine with
up to three more requests, and with those of earlier messages that still run (the engine has eight slots). Debian's
Chromium, driven by Playwright from that environment (tests/open_webui_session.py), holds a conversation: two answers, a
third stopped mid-stream and regenerated, and a last one that must come. Screenshots of each step and both servers' logs
go to tests/artifacts/open-webui/, with ``requests.txt``: what Open WebUI asked of the proxy, from its access log.

Each message gets a slot beside the requests Open WebUI sent before it: its title, which SmolLM2 often writes to
its 1000-token limit, and its tags, which it sometimes writes on to the request's deadline (300 s). The message
shares the two cores with them rather than waiting behind them, so it is answered in a minute or two even on a
machine busy with the rest of the suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scripts.stack import ROOT, free_port
from tests.waiting import eventually

MODEL = "smollm2:135m"
TESTS = Path(__file__).parents[1]
SESSION = TESTS / "open_webui_session.py"
VERSIONS = ROOT / "monitoring" / "versions.env"
ARTIFACTS = TESTS / "artifacts" / "open-webui"
# The browser itself first: /usr/bin/chromium is Debian's wrapper script around it.
CHROMIUM = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))
# Open WebUI offline (open-webui.md): no model hub, no update check, no OpenAI connection; no sign-in.
OPEN_WEBUI_ENV = {
    "WEBUI_AUTH": "False",
    "WEBUI_SECRET_KEY": "test-only-secret-key-of-32-bytes!",
    "OFFLINE_MODE": "true",
    "HF_HUB_OFFLINE": "1",
    "ENABLE_OPENAI_API": "False",
    "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "false",
    "RAG_RERANKING_MODEL_AUTO_UPDATE": "false",
    "ENABLE_VERSION_UPDATE_CHECK": "false",
    # SmolLM2's template renders no tools, so a chat with Open WebUI's built-in tools ("native" function calling,
    # its default) is Ollama's 400 "... does not support tools", with the proxy as with Ollama. What its users do
    # for such a model: function calling "Default" (legacy), where Open WebUI sends no tools.
    "DEFAULT_MODEL_PARAMS": '{"function_calling": "legacy"}',
}
STEPS = ("first", "second", "stopped", "regenerated", "last")
_ACCESS = re.compile(r"method=(\S+) route=(\S+) status=(\d+) .*?error_type=(\S+)")
# Both servers start in well under a minute on a quiet machine; Open WebUI imports torch on start.
_START_TIMEOUT = 300.0
_SESSION_TIMEOUT = 2400.0


def _open_webui() -> Path | None:
    """The pinned environment's bin directory, if scripts/build-programs.sh open-webui has built it. Looked up, never
    built: tests.programs would build every other program first, and this one is several GB."""
    cache = os.environ.get("MOP_PROGRAMS_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mistral-ollama-proxy" / "programs"
    )
    lines = [line for line in VERSIONS.read_text().splitlines() if line and not line.startswith("#")]
    versions = dict(line.split("=", 1) for line in lines)
    built = Path(cache) / f"open-webui-{versions['OPEN_WEBUI_VERSION']}-playwright-{versions['PLAYWRIGHT_VERSION']}"
    return built / "venv" / "bin" if (built / ".done").exists() else None


def _chromium() -> Path | None:
    return next((path for path in CHROMIUM if path.exists()), None)


def _artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"Open WebUI test artifacts (screenshots, logs): {ARTIFACTS}")
    return ARTIFACTS


@contextmanager
def _running(command: list[str], env: dict[str, str], log: Path, url: str, ready: str) -> Iterator[str]:
    """``command`` with its output in ``log``, yielded as ``url`` once GET ``url + ready`` answers 200."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: _answers(process, url + ready, log), within=_START_TIMEOUT, every=0.5)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(45)  # the proxy's grace for streams in flight is 30 s
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(process: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    assert process.poll() is None, f"{process.args!r} exited with {process.returncode}: {log.read_text()[-3000:]}"
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _proxy(log: Path) -> AbstractContextManager[str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "MISTRAL_URL"}  # the engine in-process
    # SmolLM2 writes some of Open WebUI's background titles and tags on and on (a title asks for 1000 tokens, tags
    # for no limit): an operator sharing a small engine caps what one request may write, and so does this one.
    env["MAX_OUTPUT_TOKENS"] = "256"
    command = [shutil.which("mistral-ollama-proxy") or "mistral-ollama-proxy", "serve", "--bind", f"127.0.0.1:{port}"]
    return _running(command, env, log, f"http://127.0.0.1:{port}", "/")


def _webui(bin_dir: Path, proxy: str, data: Path, log: Path) -> AbstractContextManager[str]:
    port = free_port()
    env = {**os.environ, **OPEN_WEBUI_ENV, "DATA_DIR": str(data), "OLLAMA_BASE_URL": proxy}
    command = [str(bin_dir / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return _running(command, env, log, f"http://127.0.0.1:{port}", "/health")


def _session(bin_dir: Path, url: str, chromium: Path, shots: Path) -> dict[str, Any]:
    command = [str(bin_dir / "python"), str(SESSION), url, str(chromium), str(shots)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=_SESSION_TIMEOUT)
    (shots / "session.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"the browser session failed (screenshots in {shots}):\n{done.stderr[-4000:]}"
    seen: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return seen


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _idle(proxy: str) -> Samples:
    """The proxy's metrics if no request is in flight, else none."""
    text = httpx.get(f"{proxy}/metrics", timeout=10).text
    samples = {(sample.name, frozenset(sample.labels.items())): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}  # fmt: skip
    return samples if samples[("mistral_active_requests", frozenset())] == 0 else {}


def _requests(log: Path) -> Counter[str]:
    """What Open WebUI asked of the proxy, from its access log: ``METHOD route status error_type`` -> count."""
    found = _ACCESS.findall(log.read_text())
    summary = Counter(" ".join(fields) for fields in found)
    (log.parent / "requests.txt").write_text("".join(f"{n:4d} {line}\n" for line, n in sorted(summary.items())))
    return summary


def _chats(metrics: Samples) -> dict[str, float]:
    """Finished POST /api/chat by status."""
    found: dict[str, float] = {}
    for (name, labels), value in metrics.items():
        if name == "mistral_http_requests_total" and ("endpoint", "/api/chat") in labels:
            status = dict(labels)["status"]
            found[status] = found.get(status, 0) + value
    return found


@pytest.mark.timeout(3600)
def test_a_user_chats_through_open_webui_in_a_browser(tmp_path: Path) -> None:
    if os.environ.get("MOP_OPEN_WEBUI") != "1":
        # Minutes: .ci/run builds its environment if need be and runs it after the rest of the suite
        pytest.skip("Open WebUI in a browser runs after the suite: bash .ci/run (or MOP_OPEN_WEBUI=1 pytest)")
    bin_dir, chromium = _open_webui(), _chromium()
    if bin_dir is None:
        pytest.skip("!!! NOT RUN: Open WebUI in a browser: its environment is not built "
                    "(bash scripts/build-programs.sh open-webui: several GB)")  # fmt: skip
    if chromium is None:
        pytest.skip("!!! NOT RUN: Open WebUI in a browser: no Chromium (apt-get install chromium)")
    artifacts = _artifacts()
    try:
        with _proxy(artifacts / "proxy.log") as proxy:
            with _webui(bin_dir, proxy, tmp_path / "open-webui", artifacts / "open-webui.log") as webui:
                seen = _session(bin_dir, webui, chromium, artifacts)
            # Open WebUI has stopped: whatever it still had in flight (follow-up and tag requests) has ended too.
            metrics = eventually(lambda: _idle(proxy), within=120.0, every=0.5)
    finally:
        asked = _requests(artifacts / "proxy.log")
    where = f"(screenshots and logs in {artifacts}; the proxy answered {dict(asked)})"
    assert seen["selected_model"] == MODEL, where
    assert MODEL in seen["listed_models"], where
    unanswered = {step: seen["shown"].get(step) for step in STEPS if not seen["answers"].get(step)}
    assert not unanswered, f"steps without an answer, and what they showed instead: {unanswered} {where}"
    assert seen["streamed"]["stopped"], f"the stop came after the answer had ended {where}"
    assert seen["versions"] == "2/2", where  # the regenerated answer, beside the stopped one
    assert (seen["user_messages"], seen["assistant_messages"]) == (4, 4), where
    chats = _chats(metrics)
    assert chats.get("200", 0) >= len(STEPS), f"{chats} {where}"
