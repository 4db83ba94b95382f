"""ARCHITECTURE.md's "Where to add" recipes, each followed once in a scratch copy of the project: adding a route, a
metric or an upstream touches exactly the files the recipe names, and then the project's own checks pass (the
README tables, the layers, the OpenAPI document) and the new part works over HTTP. A check that the recipe needs
is also run before its last step, and must fail there: it is what asks for that step."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()
_SKIP = shutil.ignore_patterns("__pycache__", "artifacts", "node_modules", "*.egg-info")


class Scratch:
    """A copy of the project to follow a recipe in; remembers which of its files the recipe touched."""

    def __init__(self, root: Path) -> None:
        self.root, self.touched = root, set[str]()
        for name in ("app", "otel", "tests", "scripts", "monitoring"):
            shutil.copytree(ROOT / name, root / name, ignore=_SKIP)
        for name in ("README.md", "ARCHITECTURE.md", "pyproject.toml"):
            shutil.copy(ROOT / name, root / name)

    def create(self, path: str, text: str) -> None:
        assert not (self.root / path).exists(), path
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)
        self.touched.add(path)

    def edit(self, path: str, old: str, new: str) -> None:
        text = (self.root / path).read_text()
        assert text.count(old) == 1, f"{old!r} in {path}"
        (self.root / path).write_text(text.replace(old, new))
        self.touched.add(path)

    def check(self, *tests: str) -> subprocess.CompletedProcess[str]:
        """The scratch copy's own tests, run on its own code (the working directory comes first on the path)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "MISTRAL_", "API_"))}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests]
        return subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=900)

    def passes(self, *tests: str) -> None:
        done = self.check(*tests)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _recipe(name: str) -> str:
    """The recipe's text in ARCHITECTURE.md."""
    recipes = ARCHITECTURE.split("## Where to add", 1)[1]
    return recipes.split(f"- **{name}**", 1)[1].split("\n- **", 1)[0]


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    return Scratch(tmp_path / "project")


_ECHO_STRUCTS = '''"""A scratch route's wire shapes."""

from __future__ import annotations

from msgspec import Struct


class EchoRequest(Struct):
    model: str = ""


class EchoResponse(Struct):
    model: str
'''

_ECHO_HANDLER = '''"""A scratch route."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.http.body import parse_body
from app.http.responses import json_response
from app.ollama.echo import EchoRequest, EchoResponse


async def echo(request: Request) -> Response:
    body = await parse_body(request, EchoRequest)
    return json_response(EchoResponse(model=body.model))
'''

_ECHO_TEST = """import httpx


def test_echo(http: httpx.Client) -> None:
    assert http.post("/api/echo", json={"model": "m"}).json() == {"model": "m"}
    assert http.post("/api/echo", content=b"{").status_code == 400
    assert "post" in http.get("/api/openapi.json").json()["paths"]["/api/echo"]
"""


@pytest.mark.timeout(900)
def test_adding_a_route_touches_the_four_files_the_recipe_names(scratch: Scratch) -> None:
    recipe = _recipe("An Ollama route")
    assert "Four files" in recipe
    scratch.create("app/ollama/echo.py", _ECHO_STRUCTS)
    scratch.create("app/routes/echo.py", _ECHO_HANDLER)
    scratch.edit("app/routes/__init__.py", "from app.routes import ", "from app.ollama.echo import EchoRequest, "
                 "EchoResponse\nfrom app.routes import echo, ")  # fmt: skip
    line = '    _Route("/api/echo", echo.echo, ["POST"], Doc("Echo", EchoRequest, EchoResponse)),'
    scratch.edit("app/routes/__init__.py", "\n]  # fmt: skip", f"\n{line}\n]  # fmt: skip")
    (scratch.root / "tests" / "test_scratch_echo.py").write_text(_ECHO_TEST)
    scratch.passes("tests/test_scratch_echo.py", "tests/routes/test_openapi.py")
    assert scratch.check("tests/test_readme_contract.py").returncode == 1  # the README's row is what it asks for
    row = "| `POST /v1/chat/completions`"
    scratch.edit("README.md", row, "| `POST /api/echo` | a scratch route |\n" + row)
    scratch.passes("tests/test_readme_contract.py", "tests/test_layering.py")
    assert scratch.touched == {"app/ollama/echo.py", "app/routes/echo.py", "app/routes/__init__.py", "README.md"}
    assert all(f"`{named}`" in recipe for named in ("app/ollama/", "app/routes/", "app/routes/__init__.py"))
    assert "README's route table" in recipe


_METRIC_TEST = """import httpx


def test_scratch_metric(http: httpx.Client) -> None:
    http.get("/api/version")
    assert 'mistral_scratch_events_total{endpoint="/api/version"} 1.0' in http.get("/metrics").text
"""


@pytest.mark.timeout(900)
def test_adding_a_metric_touches_the_files_the_recipe_names(scratch: Scratch) -> None:
    recipe = _recipe("A metric")
    assert "`otel/metrics.py`" in recipe and "its recording site" in recipe and "README" in recipe
    scratch.edit("otel/metrics.py", "class ProxyMetrics:\n", "class ProxyMetrics:\n"
                 '    scratch_events: Instrument[Counter] = Instrument("mistral_scratch_events", "counter", "{event}",'
                 ' "Scratch events", checked=False)\n')  # fmt: skip
    # Its recording site: here the HTTP middleware, beside the request counter.
    scratch.edit("otel/asgi.py", "            metrics.http_requests.add(1, attributes)\n",
                 "            metrics.http_requests.add(1, attributes)\n"
                 "            metrics.scratch_events.add(1, {ENDPOINT: endpoint})\n")  # fmt: skip
    (scratch.root / "tests" / "test_scratch_metric.py").write_text(_METRIC_TEST)
    scratch.passes("tests/test_scratch_metric.py")
    assert scratch.check("tests/otel/test_instruments.py").returncode == 1  # the README's row is what it asks for
    row = "| `mistral_http_requests_total` |"  # the table follows the specifications' order: the new one is first
    scratch.edit("README.md", row, "| `mistral_scratch_events_total` | counter | `endpoint` | scratch events |\n" + row)
    scratch.passes("tests/otel/test_instruments.py", "tests/test_layering.py")
    assert scratch.touched == {"otel/metrics.py", "otel/asgi.py", "README.md"}


_UPSTREAM = '''"""A scratch upstream: every chat is answered "scratch"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import msgspec

from app.upstream.base import ModelAction, PayloadStream, Route
from app.upstream.wire import ModelCard, ModelState


class _Stream:
    def __init__(self, payloads: list[bytes]) -> None:
        self._payloads = payloads

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        yield self._payloads

    async def aclose(self) -> None:
        pass


class ScratchUpstream:
    logprob_scale = 1.0

    async def list_models(self) -> list[ModelCard]:
        return [ModelCard(id="scratch")]

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState:
        return ModelState(model_id=model_id, status="loaded")

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> PayloadStream:
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        chunk = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "scratch", "usage": usage,
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "scratch"},
                              "finish_reason": "stop"}]}
        return _Stream([msgspec.json.encode(chunk)])

    async def post(self, route: Route, body: dict[str, Any]) -> bytes:
        raise NotImplementedError

    async def health(self) -> bool:
        return True

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[bool]]]:
        return {"scratch": self.health}

    def locations(self, model_id: str) -> list[str]:
        return []

    async def aclose(self) -> None:
        pass
'''

_UPSTREAM_TEST = """from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app, make_upstream
from app.settings import Settings
from otel.telemetry import Telemetry
from tests.servers import Server, serve_in_thread


@pytest.fixture
def proxy(telemetry: Telemetry) -> Iterator[Server]:
    settings = Settings(model="scratch")
    upstream = make_upstream(settings, telemetry)
    with serve_in_thread(create_app(settings, telemetry=telemetry, upstream=upstream)) as server:
        yield server


def test_scratch_upstream(http: httpx.Client) -> None:
    lines = http.post("/api/chat", json={"model": "scratch", "messages": [{"role": "user", "content": "hi"}]})
    assert [line["message"]["content"] for line in map(__import__("json").loads, lines.text.splitlines())][0] == (
        "scratch")
"""


@pytest.mark.timeout(900)
def test_adding_an_upstream_touches_the_files_the_recipe_names(scratch: Scratch) -> None:
    recipe = _recipe("An upstream")
    assert "`app/upstream/base.Upstream`" in recipe and "`app/main.py`" in recipe
    # Every method of the contract is named in the recipe, so that following it builds a complete upstream.
    contract = (scratch.root / "app" / "upstream" / "base.py").read_text().split("class Upstream(Protocol):", 1)[1]
    for method in re.findall(r"def (\w+)\(", contract):
        assert f"`{method}`" in recipe, f"the recipe does not name {method}"
    scratch.create("app/upstream/scratch/__init__.py", _UPSTREAM)
    scratch.edit("app/main.py", "    # Imported here: the engine's extension module is large",
                 '    if settings.model == "scratch":\n'
                 "        from app.upstream.scratch import ScratchUpstream\n\n"
                 "        return ScratchUpstream()\n"
                 "    # Imported here: the engine's extension module is large")  # fmt: skip
    (scratch.root / "tests" / "test_scratch_upstream.py").write_text(_UPSTREAM_TEST)
    scratch.passes("tests/test_scratch_upstream.py", "tests/test_layering.py")
    assert scratch.touched == {"app/upstream/scratch/__init__.py", "app/main.py"}
