"""Three mistral.rs servers (emulators) with overlapping models behind one proxy: one catalog, requests only to
servers that have their model, an even spread, failover when one dies, and its return."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from otel.setup import configure
from otel.telemetry import Telemetry
from scripts.stack import free_port
from tests.emulator import Emulator, ModelEntry, Reply
from tests.load import run_clients
from tests.otel.helpers import values, wait_idle
from tests.servers import Server, serve_in_thread
from tests.waiting import eventually

HI = [{"role": "user", "content": "hi"}]
NAMES = ("gpu-a", "gpu-b", "gpu-c")


def _models(name: str) -> list[str | ModelEntry]:
    """Each emulator's models, built afresh (an emulator changes a model's status as it loads and unloads it)."""
    return {"gpu-a": ["alpha", "shared"], "gpu-b": ["beta", "shared"],
            "gpu-c": ["shared", ModelEntry("gamma", "unloaded")]}[name]  # fmt: skip


@dataclass
class Pool:
    emulators: dict[str, Emulator]
    servers: dict[str, Server]
    stops: dict[str, contextlib.ExitStack]
    proxy: Server
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    telemetry: Telemetry
    app: Starlette

    def kill(self, name: str) -> None:
        """Stop a server at once: its connections are dropped, streams and all, and new ones refused."""
        self.stops[name].close()

    def chats(self, name: str) -> int:
        return sum(r.path == "/v1/chat/completions" for r in self.emulators[name].requests)

    def spread(self) -> dict[str, int]:
        return {name: self.chats(name) for name in NAMES}


@contextlib.contextmanager
def _pool(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    weights: tuple[float, ...] = (1, 1, 1),
    health_interval: float = 0.2,
    models: Callable[[str], list[str | ModelEntry]] = _models,
) -> Iterator[Pool]:
    emulators = {name: Emulator(models(name)) for name in NAMES}
    with contextlib.ExitStack() as stack:
        stops = {name: stack.enter_context(contextlib.ExitStack()) for name in NAMES}
        servers = {
            name: stops[name].enter_context(
                serve_in_thread(emulators[name].app, graceful_timeout=0.0, port=free_port())
            )
            for name in NAMES
        }
        upstreams = tmp_path_factory.mktemp("pool") / "upstreams.yaml"
        upstreams.write_text(
            "upstreams:\n"
            + "".join(
                f"  - {{url: '{servers[n].url}', name: {n}, weight: {w}}}\n"
                for n, w in zip(NAMES, weights, strict=True)
            )
        )
        settings = Settings.from_env({"MISTRAL_UPSTREAMS_FILE": str(upstreams),
                                      "HEALTH_CHECK_INTERVAL_SECS": str(health_interval),
                                      "MODEL_CACHE_TTL_SECS": "0.2"}, env_file=None)  # fmt: skip
        reader, spans = InMemoryMetricReader(), InMemorySpanExporter()
        telemetry = configure("test", environ={}, span_exporters=[spans], metric_readers=[reader])
        stack.callback(telemetry.shutdown)
        app = create_app(settings, telemetry=telemetry)
        proxy = stack.enter_context(serve_in_thread(app))
        yield Pool(emulators, servers, stops, proxy, reader, spans, telemetry, app)


@pytest.fixture
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    with _pool(tmp_path_factory) as found:
        yield found


def _chat(http: httpx.Client, model: str, stream: bool = False) -> httpx.Response:
    return http.post("/api/chat", json={"model": model, "messages": HI, "stream": stream})


def test_the_catalog_lists_every_model_once_and_ps_says_where_each_is_loaded(pool: Pool) -> None:
    with httpx.Client(base_url=pool.proxy.url) as http:
        tags = http.get("/api/tags").json()["models"]
        running = http.get("/api/ps").json()["models"]
    assert sorted(model["name"] for model in tags) == ["alpha:latest", "beta:latest", "gamma:latest", "shared:latest"]
    assert {model["name"]: model["upstreams"] for model in running} == {
        "alpha:latest": ["gpu-a"],
        "beta:latest": ["gpu-b"],
        "shared:latest": ["gpu-a", "gpu-b", "gpu-c"],
    }


def test_each_model_goes_only_to_servers_that_have_it(pool: Pool) -> None:
    with httpx.Client(base_url=pool.proxy.url) as http:
        for model in ("alpha", "beta", "gamma", "alpha", "beta", "gamma"):
            assert _chat(http, model).status_code == 200
    asked = {name: sorted({r.body["model"] for r in e.requests if r.path == "/v1/chat/completions"})
             for name, e in pool.emulators.items()}  # fmt: skip
    assert asked == {"gpu-a": ["alpha"], "gpu-b": ["beta"], "gpu-c": ["gamma"]}


def _load(proxy: Server, model: str, count: int, threads: int = 16, stream: bool = False) -> list[str]:
    """``count`` chats from ``threads`` clients; the failures' texts (a stream's failure is its last line's)."""

    def chat(http: httpx.Client) -> str | None:
        response = _chat(http, model, stream)
        last = (response.text.splitlines() or [""])[-1] if stream else response.text
        try:
            failed = response.status_code != 200 or "error" in json.loads(last)
        except ValueError:  # not a JSON line: say so rather than lose the thread
            failed = True
        return f"{response.status_code} {last!r}" if failed else None

    return run_clients(proxy.url, count, threads, chat)


def test_a_steady_load_spreads_evenly(pool: Pool) -> None:
    for emulator in pool.emulators.values():
        emulator.script(*[Reply(content="a b c", delay=0.002)] * 600)
    assert _load(pool.proxy, "shared", 480) == []
    spread = pool.spread()
    assert sum(spread.values()) == 480
    assert all(abs(count - 160) <= 32 for count in spread.values()), spread  # within 20 % of even


def test_weights_share_the_load(tmp_path_factory: pytest.TempPathFactory) -> None:
    with _pool(tmp_path_factory, weights=(2, 1, 1)) as pool:
        for emulator in pool.emulators.values():
            emulator.script(*[Reply(content="a b c", delay=0.002)] * 600)
        assert _load(pool.proxy, "shared", 400) == []
        spread = pool.spread()
    assert abs(spread["gpu-a"] - 200) <= 40 and all(abs(spread[n] - 100) <= 20 for n in ("gpu-b", "gpu-c")), spread


def test_the_engines_own_queue_steers_requests_away(pool: Pool) -> None:
    gpu_a = pool.emulators["gpu-a"]
    gpu_a.waiting, seen = 50, len(gpu_a.requests)  # another proxy's requests, queued in that engine
    eventually(lambda: any(r.path == "/metrics" for r in gpu_a.requests[seen:]), within=3.0)  # a health check read it
    with httpx.Client(base_url=pool.proxy.url) as http:
        for _ in range(20):
            assert _chat(http, "shared").status_code == 200
    assert pool.spread() == {"gpu-a": 0, "gpu-b": 10, "gpu-c": 10}


def test_generations_carry_their_server_in_metrics_and_spans(pool: Pool) -> None:
    with httpx.Client(base_url=pool.proxy.url) as http:
        assert _chat(http, "alpha").status_code == 200
        assert _chat(http, "beta", stream=True).status_code == 200
    wait_idle(pool.reader)
    assert values(pool.reader, "mistral_generate_tokens", "model", "upstream") == {
        ("alpha", "gpu-a"): 4,  # the emulator's default answer, "Hello from the emulator."
        ("beta", "gpu-b"): 4,
    }
    keys = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "server.address", "server.port")
    durations = values(pool.reader, "gen_ai.client.operation.duration", *keys, "gen_ai.response.model",
                       "ollama_proxy.upstream")  # fmt: skip
    ports = {name: pool.servers[name].port for name in NAMES}
    assert durations == {
        ("chat", "mistral_rs", "alpha", "127.0.0.1", ports["gpu-a"], "alpha", "gpu-a"): 1,
        ("chat", "mistral_rs", "beta", "127.0.0.1", ports["gpu-b"], "beta", "gpu-b"): 1,
    }
    eventually(lambda: len(values(pool.reader, "mistral_upstream_up", "upstream")) == 3)
    assert values(pool.reader, "mistral_upstream_up", "upstream") == {(name,): 1 for name in NAMES}
    pool.telemetry.tracer_provider.force_flush()  # type: ignore[attr-defined]
    genai = {span.name: dict(span.attributes or {}) for span in pool.spans.get_finished_spans()
             if span.name.startswith("chat ")}  # fmt: skip
    assert {name: (a["server.address"], a["server.port"]) for name, a in genai.items()} == {
        "chat alpha": ("127.0.0.1", ports["gpu-a"]),
        "chat beta": ("127.0.0.1", ports["gpu-b"]),
    }
    # the upstream HTTP span under each names the server the request went to
    finished = pool.spans.get_finished_spans()
    parents = {span.context.span_id: span.name for span in finished}
    clients = {parents[span.parent.span_id]: (dict(span.attributes or {})["server.port"]) for span in finished
               if span.name == "POST" and span.parent is not None and span.parent.span_id in parents}  # fmt: skip
    assert clients == {"chat alpha": ports["gpu-a"], "chat beta": ports["gpu-b"]}


def test_a_server_that_dies_is_routed_around_and_rejoins_when_it_returns(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with _pool(tmp_path_factory) as pool:
        for emulator in pool.emulators.values():
            emulator.script(*[Reply(content="a b c d e f", delay=0.01)] * 2000)
        port = pool.servers["gpu-c"].port
        results: dict[str, list[str]] = {}
        before = threading.Thread(target=lambda: results.setdefault("during", _load(pool.proxy, "shared", 300,
                                                                                   stream=True)))  # fmt: skip
        before.start()
        eventually(lambda: pool.emulators["gpu-c"].active_streams > 0, within=5.0)
        pool.kill("gpu-c")
        before.join()
        eventually(lambda: values(pool.reader, "mistral_upstream_up", "upstream").get(("gpu-c",)) == 0, within=5.0)
        assert _load(pool.proxy, "shared", 150) == []  # none lost after the failed health check
        served_while_down = pool.spread()
        with serve_in_thread(pool.emulators["gpu-c"].app, port=port):  # back at its address
            eventually(lambda: values(pool.reader, "mistral_upstream_up", "upstream").get(("gpu-c",)) == 1,
                       within=5.0)  # fmt: skip
            assert _load(pool.proxy, "shared", 90) == []
            rejoined = pool.spread()["gpu-c"] - served_while_down["gpu-c"]
    # at most the streams in flight on the dead server end with an error line
    lost = results["during"]
    assert len(lost) <= 16 and all("error" in failure for failure in lost), lost
    assert 20 <= rejoined <= 40, rejoined


def test_a_refused_connection_is_tried_once_more_on_another_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Before any health check notices: nothing was sent, so the request goes to another server that has the model."""
    with _pool(tmp_path_factory, health_interval=60.0) as pool, httpx.Client(base_url=pool.proxy.url) as http:
        assert _chat(http, "shared").status_code == 200
        pool.kill("gpu-c")
        before = pool.spread()
        assert [_chat(http, "shared").status_code for _ in range(9)] == [200] * 9
        after = pool.spread()
        only_there = _chat(http, "gamma")  # no other server has it
        running = http.get("/api/ps").json()["models"]
    assert after["gpu-c"] == before["gpu-c"]
    assert after["gpu-a"] + after["gpu-b"] == before["gpu-a"] + before["gpu-b"] + 9
    assert only_there.status_code == 502
    assert (
        only_there.json()["error"]
        == f"could not connect to mistral.rs at http://127.0.0.1:{pool.servers['gpu-c'].port}"
    )
    # out of rotation since its refusal: no longer listed where the shared model is loaded
    assert next(model["upstreams"] for model in running if model["name"] == "shared:latest") == ["gpu-a", "gpu-b"]


def test_unloading_reaches_every_server_that_has_the_model_and_a_load_the_one_that_holds_it(pool: Pool) -> None:
    with httpx.Client(base_url=pool.proxy.url) as http:
        unloaded = http.post("/api/generate", json={"model": "shared", "keep_alive": 0})
        loaded = http.post("/api/generate", json={"model": "gamma"})
        running = {model["name"]: model.get("upstreams") for model in http.get("/api/ps").json()["models"]}
    assert (unloaded.status_code, unloaded.json()["done_reason"]) == (200, "unload")
    assert (loaded.status_code, loaded.json()["done_reason"]) == (200, "load")

    def managed(name: str) -> list[tuple[str, str]]:
        return [(r.path, r.body["model_id"]) for r in pool.emulators[name].requests if r.path.startswith("/v1/models/")]

    assert {name: managed(name) for name in NAMES} == {
        "gpu-a": [("/v1/models/unload", "shared")],
        "gpu-b": [("/v1/models/unload", "shared")],
        "gpu-c": [("/v1/models/unload", "shared"), ("/v1/models/status", "gamma"), ("/v1/models/reload", "gamma")],
    }
    assert running == {"alpha:latest": ["gpu-a"], "beta:latest": ["gpu-b"], "gamma:latest": ["gpu-c"]}


def test_ready_while_some_server_answers(tmp_path_factory: pytest.TempPathFactory) -> None:
    with _pool(tmp_path_factory, health_interval=60.0) as pool, httpx.Client(base_url=pool.proxy.url) as http:
        answers = [http.get("/ready").json()]
        for name in ("gpu-a", "gpu-b"):
            pool.kill(name)
            answers.append(http.get("/ready").json())
        pool.kill("gpu-c")
        last = http.get("/ready")
    assert answers == [{"status": "ready", "upstream": "up"}] * 3
    assert (last.status_code, last.json()) == (503, {"status": "not ready", "upstream": "down"})


def test_a_load_marks_loaded_only_the_server_that_loaded(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The catalog marks its own cards loaded; the servers' cards must not change with them."""

    def twins(name: str) -> list[str | ModelEntry]:
        return [ModelEntry("twin", "unloaded")] if name != "gpu-c" else ["other"]

    # gpu-b weighs more, so the load goes there; the catalog's card for "twin" is the first server's (gpu-a's).
    with (
        _pool(tmp_path_factory, models=twins, weights=(1, 2, 1), health_interval=60.0) as pool,
        httpx.Client(base_url=pool.proxy.url) as http,
    ):
        assert http.post("/api/generate", json={"model": "twin"}).json()["done_reason"] == "load"
        members = pool.app.state.services.upstream.members
        reloaded = {name: [r.path for r in e.requests].count("/v1/models/reload") for name, e in pool.emulators.items()}
    assert reloaded == {"gpu-a": 0, "gpu-b": 1, "gpu-c": 0}
    assert {member.name: member.loaded("twin") for member in members} == {"gpu-a": False, "gpu-b": True, "gpu-c": False}
