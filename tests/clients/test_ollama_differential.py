"""The proxy and the real Ollama, side by side: the same requests, the same SmolLM2 GGUF, the same answers.

The real Ollama is the pinned server build (scripts/build-programs.sh ollama-server, ``OLLAMA_SERVER_VERSION``)
with the GGUF the embedded engine uses, created by ``ollama create`` from a Modelfile; the proxy runs that file
in-process. Compared: status codes, headers clients read, JSON shapes (keys and value types, recursively),
``done_reason``, the framing and order of stream lines, and error messages. Text and timings are not compared.
Every difference found must be in ``KNOWN``, with its reason, and every entry of ``KNOWN`` must still be found;
the README prints the table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app, make_upstream
from app.ollama.translate.options import OLLAMA_DEFAULTS
from app.settings import Settings
from app.upstream.embedded import default_cache_dir, resolve
from otel.telemetry import disabled
from scripts.stack import free_port
from tests.programs import programs
from tests.servers import serve_in_thread

MODEL = "smollm2:135m"
_VERSIONS = dict(line.split("=", 1) for line in (Path(__file__).parents[2] / "monitoring" / "versions.env").read_text()
                 .splitlines() if line and not line.startswith("#"))  # fmt: skip
OLLAMA_API, OLLAMA_SERVER = _VERSIONS["OLLAMA_VERSION"], _VERSIONS["OLLAMA_SERVER_VERSION"]
HI = [{"role": "user", "content": "Say hello."}]
SHORT = {"num_predict": 1, "temperature": 0}  # one greedy token: both stop for length, whatever the text
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: Any = None


CASES = [
    Case("version", "GET", "/api/version"),
    Case("tags", "GET", "/api/tags"),
    Case("show", "POST", "/api/show", {"model": MODEL}),
    Case("chat", "POST", "/api/chat", {"model": MODEL, "messages": HI, "stream": False, "options": SHORT}),
    Case("chat_stream", "POST", "/api/chat", {"model": MODEL, "messages": HI, "options": SHORT}),
    Case("generate", "POST", "/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False, "options": SHORT}),
    Case("generate_stream", "POST", "/api/generate", {"model": MODEL, "prompt": "Hi", "options": SHORT}),
    Case("chat_options", "POST", "/api/chat", {"model": MODEL, "messages": HI, "stream": False,
         "options": {**SHORT, "top_k": 1, "top_p": 0.5, "repeat_penalty": 1.1, "seed": 7}}),
    Case("chat_format_json", "POST", "/api/chat",
         {"model": MODEL, "messages": HI, "stream": False, "format": "json", "options": SHORT}),
    Case("chat_tools", "POST", "/api/chat",
         {"model": MODEL, "messages": HI, "stream": False, "tools": [TOOL], "options": SHORT}),
    Case("chat_think", "POST", "/api/chat", {"model": MODEL, "messages": HI, "stream": False, "think": True}),
    Case("chat_images", "POST", "/api/chat", {"model": MODEL, "stream": False, "options": SHORT,
         "messages": [{"role": "user", "content": "What is this?", "images": [PIXEL]}]}),
    Case("generate_images", "POST", "/api/generate",
         {"model": MODEL, "prompt": "What is this?", "images": [PIXEL], "stream": False, "options": SHORT}),
    Case("chat_logprobs", "POST", "/api/chat",
         {"model": MODEL, "messages": HI, "stream": False, "logprobs": True, "top_logprobs": 3, "options": SHORT}),
    Case("generate_logprobs_stream", "POST", "/api/generate",
         {"model": MODEL, "prompt": "Hi", "logprobs": True, "options": {**SHORT, "num_predict": 3}}),
    Case("top_logprobs_out_of_range", "POST", "/api/chat",
         {"model": MODEL, "messages": HI, "logprobs": True, "top_logprobs": 21}),
    Case("generate_load", "POST", "/api/generate", {"model": MODEL}),
    Case("chat_load", "POST", "/api/chat", {"model": MODEL, "messages": []}),
    Case("generate_empty_prompt", "POST", "/api/generate", {"model": MODEL, "prompt": ""}),
    Case("ps", "GET", "/api/ps"),
    Case("unknown_model_chat", "POST", "/api/chat", {"model": "no-such-model", "messages": HI}),
    Case("unknown_model_generate", "POST", "/api/generate", {"model": "no-such-model", "prompt": "Hi"}),
    Case("unknown_model_show", "POST", "/api/show", {"model": "no-such-model"}),
    Case("missing_model", "POST", "/api/chat", {"messages": HI}),
    Case("malformed_body", "POST", "/api/chat", b"{not json"),
    Case("empty_body", "POST", "/api/generate", b""),
    Case("wrong_method", "GET", "/api/chat"),
    Case("unknown_path", "GET", "/api/nothing"),
    Case("embed", "POST", "/api/embed", {"model": MODEL, "input": "hello"}),
    Case("openai_chat", "POST", "/v1/chat/completions", {"model": MODEL, "messages": HI, "max_tokens": 3}),
    Case("openai_models", "GET", "/v1/models"),
    Case("messages", "POST", "/v1/messages", {"model": MODEL, "max_tokens": 1, "temperature": 0, "messages": HI}),
    Case("messages_stream", "POST", "/v1/messages",
         {"model": MODEL, "max_tokens": 1, "temperature": 0, "messages": HI, "stream": True}),
    Case("messages_system_blocks", "POST", "/v1/messages", {"model": MODEL, "max_tokens": 1, "temperature": 0,
         "system": [{"type": "text", "text": "Be brief."}], "messages": HI}),
    Case("messages_unknown_model", "POST", "/v1/messages", {"model": "no-such-model", "max_tokens": 1, "messages": HI}),
    Case("messages_no_max_tokens", "POST", "/v1/messages", {"model": MODEL, "messages": HI}),
    Case("messages_url_image", "POST", "/v1/messages", {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user",
         "content": [{"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]}),
    Case("responses", "POST", "/v1/responses", {"model": MODEL, "max_output_tokens": 1, "temperature": 0,
         "input": "Say hello."}),
    Case("responses_stream", "POST", "/v1/responses", {"model": MODEL, "max_output_tokens": 1, "temperature": 0,
         "input": "Say hello.", "stream": True}),
    Case("responses_items", "POST", "/v1/responses", {"model": MODEL, "max_output_tokens": 1, "temperature": 0,
         "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text",
                                                                                 "text": "Say hello."}]}]}),
    Case("responses_unknown_model", "POST", "/v1/responses", {"model": "no-such-model", "input": "Hi"}),
    Case("responses_bad_item", "POST", "/v1/responses", {"model": MODEL, "input": [{"type": "computer_call"}]}),
    Case("generate_unload", "POST", "/api/generate", {"model": MODEL, "keep_alive": 0}),
    Case("ps_after_unload", "GET", "/api/ps"),
]  # fmt: skip

# (case, where, kind) → why the proxy answers differently. Only these may differ, each only in its kind of
# difference (``_kind_of``); each must still differ. A difference in model_info or usage is listed once, by its key
# prefix (see ``_grouped``).
# (case, where) → (Go struct, JSON field): fields of the API the proxy claims (0.33.0) that the server compared with
# (0.24.0) predates. They may be only in the proxy; test_newer_fields_are_newer reads both versions' api/types.go.
NEWER: dict[tuple[str, str], tuple[str, str]] = {
    ("tags", "body.models[].capabilities"): ("ListModelResponse", "capabilities"),
}
KNOWN: dict[tuple[str, str, str], str] = {
    ("embed", "status", "status"): "the in-process engine (mistralrs 0.9.5) computes no embeddings with a chat "
        "model: 400 `this model does not support embeddings`",
    ("embed", "body", "answer against error"): "as above",
}  # fmt: skip


def _kind_of(where: str, detail: str) -> str:
    """What kind of difference ``detail`` is, so that a KNOWN entry allows that kind only."""
    if detail.startswith("only in"):
        return detail
    if where == "status":
        return "status"
    if " an answer in " in detail or " an error in " in detail:
        return "answer against error"
    if " items in the proxy" in detail:
        return "items"
    if where in ("events", "lines"):
        return "sequence"
    if re.fullmatch(r"\w+ in the proxy, \w+ in Ollama", detail):
        return "type"
    return "value"


def _grouped(where: str) -> str:
    """model_info and usage keys are many: one entry per prefix (``body.model_info.llama.*``)."""
    for prefix in ("body.model_info.", "body.usage."):
        if where.startswith(prefix):
            head = where[len(prefix) :].split(".", 1)[0]
            return f"{prefix}{head}.*" if prefix == "body.model_info." else f"{prefix[:-1]}.*"
    return where


def _ollama_binary() -> Path | None:
    binary = programs() / "ollama-server"
    return binary if binary.exists() else None


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ollama serve exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).text == "Ollama is running":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("ollama serve did not start in 60 s")


@pytest.fixture(scope="module")
def ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    binary = _ollama_binary()
    if binary is None:
        pytest.skip("no Ollama server: scripts/build-programs.sh ollama-server builds one")
    home = tmp_path_factory.mktemp("ollama")
    port = free_port()
    env = {**os.environ, "HOME": str(home), "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(home / "models")}
    with (home / "serve.log").open("wb") as log:
        process = subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}", process)
        gguf = resolve(None, default_cache_dir())
        # The options the proxy applies to a request that gives none, as the model's own: Ollama's defaults, so
        # Ollama samples as it would without them, and its `show` lists them as the proxy's does.
        parameters = "".join(f"PARAMETER {key} {value}\n" for key, value in OLLAMA_DEFAULTS.items())
        (home / "Modelfile").write_text(f"FROM {gguf.location}/{gguf.filename}\n{parameters}")
        subprocess.run([str(binary), "create", MODEL, "-f", str(home / "Modelfile")], env=env, check=True,
                       capture_output=True)  # fmt: skip
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def proxy() -> Iterator[httpx.Client]:
    telemetry = disabled()
    settings = Settings()
    with serve_in_thread(create_app(settings, upstream=make_upstream(settings, telemetry))) as server:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            yield client


def _send(client: httpx.Client, case: Case) -> httpx.Response:
    if case.name == "ps_after_unload":  # Ollama unloads in the background: compare what both say once it is done
        deadline = time.monotonic() + 30
        while client.get("/api/ps").json()["models"] and time.monotonic() < deadline:
            time.sleep(0.1)
    if case.body is None:
        return client.request(case.method, case.path)
    content = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    return client.request(case.method, case.path, content=content, headers={"content-type": "application/json"})


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, int | float) else type(value).__name__


def _shape_diff(ours: Any, theirs: Any, where: str) -> list[str]:
    if isinstance(theirs, dict) and isinstance(ours, dict):
        found = [f"{where}.{key}: only in Ollama" for key in sorted(set(theirs) - set(ours))]
        found += [f"{where}.{key}: only in the proxy" for key in sorted(set(ours) - set(theirs))]
        for key in sorted(set(ours) & set(theirs)):
            found += _shape_diff(ours[key], theirs[key], f"{where}.{key}")
        return found
    if isinstance(theirs, list) and isinstance(ours, list):
        if bool(ours) != bool(theirs):  # an empty list is not the shape of a full one
            return [f"{where}: {len(ours)} items in the proxy, {len(theirs)} in Ollama"]
        # Item by item, each against Ollama's item at its place (or its last, for a longer list).
        return [diff for index, item in enumerate(ours)
                for diff in _shape_diff(item, theirs[min(index, len(theirs) - 1)], f"{where}[]")]  # fmt: skip
    if _kind(ours) != _kind(theirs):
        return [f"{where}: {_kind(ours)} in the proxy, {_kind(theirs)} in Ollama"]
    return []


def _values(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> list[str]:
    found = []
    for key in ("done_reason", "error", "done", "capabilities"):
        if key in ours and key in theirs and ours[key] != theirs[key]:
            found.append(f"{where}.{key}: {ours[key]!r} in the proxy, {theirs[key]!r} in Ollama")
    # Go prints a model's parameters in map order: compare them as a set of (name, value) lines
    if "parameters" in ours and "parameters" in theirs and _parameters(ours) != _parameters(theirs):
        found.append(f"{where}.parameters: {ours['parameters']!r} in the proxy, {theirs['parameters']!r} in Ollama")
    return found


def _parameters(body: dict[str, Any]) -> list[tuple[str, str]]:
    lines = body["parameters"].splitlines()
    return sorted((name, value.strip()) for name, value in (line.split(None, 1) for line in lines))


def _events(text: str) -> list[tuple[str, Any]]:
    """An SSE body's named events, in order."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields.get("event", ""), json.loads(fields["data"])))
    return events


def _lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def differences(ours: httpx.Response, theirs: httpx.Response) -> list[str]:
    found = []
    if ours.status_code != theirs.status_code:  # and the bodies are still compared: an error's shape, or an answer's
        found.append(f"status: {ours.status_code} {ours.text[:100]!r} in the proxy, {theirs.status_code} in Ollama")
    kind_ours = ours.headers.get("content-type", "").split(";")[0]
    kind_theirs = theirs.headers.get("content-type", "").split(";")[0]
    if kind_ours != kind_theirs:
        found.append(f"content-type: {kind_ours} in the proxy, {kind_theirs} in Ollama")
    if kind_theirs == "application/x-ndjson" and kind_ours == kind_theirs:
        mine, real = _lines(ours.text), _lines(theirs.text)
        if [line.get("done") for line in mine][-1:] != [True] or any(line.get("done") for line in mine[:-1]):
            found.append("stream: the proxy's lines are not done: false … done: true")
        if len(mine) != len(real):
            found.append(f"lines: {len(mine)} in the proxy, {len(real)} in Ollama")
        for index, line in enumerate(mine[:-1]):  # every line, against Ollama's at its place
            found += _shape_diff(line, real[min(index, len(real) - 2)], "line")
        found += _shape_diff(mine[-1], real[-1], "last line") + _values(mine[-1], real[-1], "last line")
    elif kind_theirs == "application/json" and kind_ours == kind_theirs:
        mine, real = ours.json(), theirs.json()
        if isinstance(mine, dict) and isinstance(real, dict) and ("error" in mine) != ("error" in real):
            # One refused, the other answered (the status says so too): one difference, not one per key.
            return [*found, f"body: {'an error' if 'error' in mine else 'an answer'} in the proxy, "
                            f"{'an error' if 'error' in real else 'an answer'} in Ollama"]  # fmt: skip
        found += _shape_diff(mine, real, "body")
        if isinstance(mine, dict) and isinstance(real, dict):
            found += _values(mine, real, "body")
    elif kind_theirs == "text/event-stream" and kind_ours == kind_theirs:
        mine_events, real_events = _events(ours.text), _events(theirs.text)
        if [name for name, _ in mine_events] != [name for name, _ in real_events]:
            names = [name for name, _ in mine_events], [name for name, _ in real_events]
            found.append(f"events: {names[0]} in the proxy, {names[1]} in Ollama")
        for index, ((name, mine_data), (_, real_data)) in enumerate(zip(mine_events, real_events, strict=False)):
            found += _shape_diff(mine_data, real_data, f"event {name}")
            if index == len(real_events) - 1:
                found += _values(mine_data, real_data, f"event {name}")
    elif ours.text != theirs.text:
        found.append(f"body: {ours.text[:80]!r} in the proxy, {theirs.text[:80]!r} in Ollama")
    return found


# SmolLM2 on a CPU, two servers: minutes when the machine is loaded; a bound on a hang, not a time target
@pytest.mark.timeout(900)
def test_the_proxy_answers_as_ollama_does(ollama: httpx.Client, proxy: httpx.Client) -> None:
    found: dict[tuple[str, str], str] = {}
    for case in CASES:
        for difference in differences(_send(proxy, case), _send(ollama, case)):
            where, _, detail = difference.partition(": ")
            found[(case.name, _grouped(where), _kind_of(where, detail))] = detail
    newer = {(case, where, "only in the proxy") for case, where in NEWER}
    unexplained = {key: detail for key, detail in found.items() if key not in KNOWN and key not in newer}
    stale = [key for key in [*KNOWN, *newer] if key not in found]
    assert not unexplained, "\n".join(f"{case} {where} ({kind}): {detail}"
                                      for (case, where, kind), detail in unexplained.items())  # fmt: skip
    assert not stale, f"no longer different, remove from KNOWN: {stale}"


def _struct_fields(version: str, struct: str) -> set[str]:
    """The JSON names of a struct's fields in Ollama's api/types.go at ``version``, from the Go module cache."""
    gopath = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    source = (Path(gopath) / f"github.com/ollama/ollama@v{version}" / "api" / "types.go").read_text()
    body = source.split(f"type {struct} struct {{", 1)[1].split("\n}", 1)[0]
    return set(re.findall(r'json:"([^",]+)', body))


def test_newer_fields_are_newer(ollama: httpx.Client) -> None:
    for struct, field in NEWER.values():
        assert field in _struct_fields(OLLAMA_API, struct), f"{struct}.{field} is not in Ollama {OLLAMA_API}"
        assert field not in _struct_fields(OLLAMA_SERVER, struct), f"{struct}.{field} is in Ollama {OLLAMA_SERVER}"


def test_the_readme_prints_the_known_differences() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("### Compared with the real Ollama", 1)[1].split("| case | where | kind | why |", 1)[1]
    rows = [line for line in table.split("\n\n", 1)[0].splitlines()[1:] if line.startswith("| `")]
    reasons = []
    for (case, where, kind), why in KNOWN.items():
        reasons.append(reasons[-1] if why == "as above" else why)  # the README writes each reason in full
        assert rows[len(reasons) - 1] == f"| `{case}` | `{where}` | {kind} | {reasons[-1]} |"
    assert len(rows) == len(KNOWN)


@pytest.mark.timeout(900)
def test_a_chat_without_options_ends_on_its_own_as_with_ollama(ollama: httpx.Client, proxy: httpx.Client) -> None:
    """Open WebUI sends no options: both sample with Ollama's defaults, and both answers end on their own, at a
    fixed seed (Ollama's option; the in-process engine's sampler starts from the same state in every process and
    takes no seed per request, so the proxy's answer is as repeatable for the same sequence of requests)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "stream": False, "options": {"seed": 42}}  # fmt: skip
    ours, theirs = proxy.post("/api/chat", json=body).json(), ollama.post("/api/chat", json=body).json()
    assert (ours["done_reason"], theirs["done_reason"]) == ("stop", "stop")
    # Two engines sample differently even from the same distribution: the same order of magnitude, not one count.
    assert ours["eval_count"] <= 4 * theirs["eval_count"] + 16, (ours["eval_count"], theirs["eval_count"])
