"""The real telemetry pipeline: the proxy → the OpenTelemetry Collector (collector-config.yaml) → Prometheus 3
(prometheus.yml) and Jaeger v2 (monitoring/jaeger/config.yaml), with Alertmanager, all started by the no-Docker
stack (scripts/stack.py) from the pinned builds. The upstream is the mistral.rs emulator, or the embedded engine."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from app.commands.check import Check, run_check
from app.main import create_app
from app.settings import Settings
from otel.setup import configure
from scripts.stack import RULES, Ports, Stack
from tests.emulator import Emulator, Reply
from tests.otel.conventions import ACCESS_LOG, METRICS, SPANS, Signal, traffic, violations
from tests.otel.otlp_receiver import http_receiver
from tests.programs import programs
from tests.servers import Server, serve_in_thread
from tests.tiny_model import build_tiny_model
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(300)

MODEL = "mistral-7b"
HI = [{"role": "user", "content": "the secret prompt"}]
# Pushes, batches and scrapes every second or faster, so that a test waits seconds, not minutes.
FAST = {"OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "HEALTH_CHECK_INTERVAL_SECS": "1", "OTEL_SERVICE_NAME": "mistral-ollama-proxy"}  # fmt: skip
OTLP_JOB = "mistral-ollama-proxy"  # service.name, as the Collector's exporter sets job
TEAMS = (
    "tenants:\n  - {name: team-a, keys: [key-a]}\n  - {name: team-b, keys: [key-b], limits: {requests_per_minute: 1}}\n"
)


def fast_rules(directory: Path) -> Path:
    """A copy of the rules whose ``for:`` durations are seconds; every expression is unchanged."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in RULES.glob("*.yml"):
        (directory / path.name).write_text(re.sub(r"(?m)^(\s+for: )\S+$", r"\g<1>2s", path.read_text()))
    return directory


def start_stack(workdir: Path, mistral_url: str | None, **proxy_env: str) -> Stack:
    stack = Stack(workdir, programs(), Ports.free(), mistral_url, {**FAST, **proxy_env}, scrape_interval="1s",
                  rules=fast_rules(workdir / "rules"))  # fmt: skip
    stack.start()
    return stack


@pytest.fixture(scope="module")
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture(scope="module")
def upstream(emulator: Emulator) -> Iterator[Server]:
    with serve_in_thread(emulator.app) as server:
        yield server


@pytest.fixture(scope="module")
def stack(upstream: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("stack"), upstream.url)
    try:
        yield stack
    finally:
        stack.stop()


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def jaeger_trace(stack: Stack, trace_id: str, spans: int, named: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The spans of one trace, once Jaeger holds at least ``spans`` of them, those ``named`` among them. (A trace
    may hold more than the test asks about, such as the catalog's GET of mistral.rs's models on a first request,
    and its spans arrive in batches: a count alone can be met before the span a test looks at.)"""

    def found() -> list[dict[str, Any]]:
        response = httpx.get(f"{stack.url('jaeger')}/api/traces/{trace_id}")
        if response.status_code != 200:
            return []
        held: list[dict[str, Any]] = [span for trace in response.json()["data"] for span in trace["spans"]]
        complete = len(held) >= spans and set(named) <= {span["operationName"] for span in held}
        return held if complete else []

    return eventually(found, within=30.0, every=0.2)


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


def parent_of(span: dict[str, Any]) -> str | None:
    return next((ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"), None)


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [span] = [span for span in spans if span["operationName"] == name]
    return span


def query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{stack.url('prometheus')}/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_a_chat_is_one_trace_in_jaeger_down_to_the_mistralrs_call(stack: Stack, emulator: Emulator) -> None:
    trace_id, parent = traceparent()
    reply = httpx.post(f"{stack.url('proxy')}/api/chat", json={"model": MODEL, "messages": HI, "stream": False},
                       headers={"traceparent": parent})  # fmt: skip
    assert reply.status_code == 200
    spans = jaeger_trace(stack, trace_id, 3, named=("POST /api/chat", f"chat {MODEL}", "POST"))
    server, genai, client = one(spans, "POST /api/chat"), one(spans, f"chat {MODEL}"), one(spans, "POST")
    assert parent_of(server) == parent.split("-")[2]  # the caller's span
    assert parent_of(genai) == server["spanID"] and parent_of(client) == genai["spanID"]
    assert tags(server)["span.kind"] == "server" and tags(server)["http.route"] == "/api/chat"
    assert {key: tags(genai)[key] for key in ("span.kind", "gen_ai.operation.name", "gen_ai.provider.name",
            "gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons")} == {
        "span.kind": "client", "gen_ai.operation.name": "chat", "gen_ai.provider.name": "mistral_rs",
        "gen_ai.request.model": MODEL, "gen_ai.response.model": MODEL, "gen_ai.usage.input_tokens": 6,
        "gen_ai.usage.output_tokens": 4, "gen_ai.response.finish_reasons": '["stop"]'}  # fmt: skip
    upstream_call = tags(client)
    assert upstream_call["span.kind"] == "client" and upstream_call["http.response.status_code"] == 200
    assert upstream_call["url.full"].endswith("/v1/chat/completions")
    # mistral.rs got the same trace, and the trace id as its request id.
    sent = [r.headers for r in emulator.requests
            if r.headers.get("x-request-id") == trace_id and r.path == "/v1/chat/completions"]  # fmt: skip
    assert [h["traceparent"] for h in sent] == [f"00-{trace_id}-{client['spanID']}-01"]
    assert all("secret" not in str(tag["value"]) for span in spans for tag in span["tags"])


def test_the_access_log_reaches_the_collectors_logs_pipeline_with_a_trace_jaeger_knows(stack: Stack) -> None:
    trace_id, parent = traceparent()
    reply = httpx.post(f"{stack.url('proxy')}/api/generate", json={"model": MODEL, "prompt": "hello there"},
                       headers={"traceparent": parent})  # fmt: skip
    assert reply.status_code == 200
    jaeger_trace(stack, trace_id, 3)

    def record() -> str | None:
        # The debug exporter prints each record as a block: Body, Attributes, Trace ID, Span ID.
        blocks = stack.log("otel-collector").split("LogRecord #")
        return next((b for b in blocks if f"Trace ID: {trace_id}" in b and "EventName: ollama_proxy.access" in b), None)

    block = eventually(record, within=30.0, every=0.2)
    assert "Body: Str(method=POST route=/api/generate status=200 duration_ms=" in block
    assert f"trace_id={trace_id}" in block and "model=mistral-7b input_tokens=5 output_tokens=4" in block
    for attribute in ("-> http.request.method: Str(POST)", "-> http.route: Str(/api/generate)",
                      "-> http.response.status_code: Int(200)", "-> gen_ai.request.model: Str(mistral-7b)",
                      "-> gen_ai.usage.output_tokens: Int(4)"):  # fmt: skip
        assert attribute in block, block
    assert "SeverityText: INFO" in block and "secret" not in block and "hello there" not in block


def test_exemplars_of_the_duration_histograms_point_at_traces_in_jaeger(stack: Stack) -> None:
    def exemplars(metric: str) -> set[str]:
        # A pushed point carries the exemplars of its own interval only: keep traffic going until a scrape saw some.
        httpx.post(f"{stack.url('proxy')}/api/chat", json={"model": MODEL, "messages": HI, "stream": False})
        params = {"query": f'{metric}{{job="{OTLP_JOB}"}}', "start": "0", "end": "9999999999"}
        body = httpx.get(f"{stack.url('prometheus')}/api/v1/query_exemplars", params=params).json()
        return {e["labels"]["trace_id"] for series in body["data"] for e in series["exemplars"]}

    for metric in ("mistral_http_request_duration_seconds_bucket", "gen_ai_client_operation_duration_seconds_bucket"):
        trace_ids = eventually(lambda metric=metric: exemplars(metric), within=30.0, every=0.5)  # type: ignore[misc]
        for trace_id in trace_ids:
            assert jaeger_trace(stack, trace_id, 1), (metric, trace_id)


def test_the_check_command_passes_and_fails_clearly_without_the_collector(stack: Stack) -> None:
    lines: list[str] = []
    check = Check(stack.url("proxy"), stack.url("prometheus"), jaeger=stack.url("jaeger"),
                  collector=stack.url("collector"), timeout=30, say=lines.append)  # fmt: skip
    assert run_check(check), "\n".join(lines)
    names = [line.split(":")[0] for line in lines if line.startswith("PASS")]
    assert {"PASS  collector health", "PASS  series through the collector", "PASS  trace in jaeger"} <= set(names)
    assert lines[-2] == f"trace:     {stack.url('jaeger')}/trace/{check.trace_id}"
    assert lines[-1] == "result: all checks passed"

    stack.stop_one("otel-collector")
    try:
        lines.clear()
        check = Check(stack.url("proxy"), stack.url("prometheus"), collector=stack.url("collector"), timeout=3,
                      say=lines.append)  # fmt: skip
        assert not run_check(check)
        assert f"FAIL  collector health: {stack.url('collector')} unreachable (ConnectError): is it running?" in lines
        assert lines[-1].startswith("result: ") and lines[-1].endswith(" failed")
    finally:
        stack.start_one("otel-collector")


def test_upstream_down_fires_in_alertmanager_and_resolves_when_it_is_back(emulator: Emulator, tmp_path: Path) -> None:
    with serve_in_thread(emulator.app) as server:
        port = server.port
        stack = start_stack(tmp_path, server.url)
    # The emulator stopped with the `with`: the proxy's health check fails from now on.
    try:

        def firing(name: str) -> list[dict[str, Any]]:
            alerts = httpx.get(f"{stack.url('alertmanager')}/api/v2/alerts").json()
            return [a for a in alerts if a["labels"]["alertname"] == name]

        # Its only upstream: all are down, and Alertmanager's inhibit rule silences the per-upstream warning.
        alerts = eventually(lambda: firing("MistralAllUpstreamsDown"), within=60.0, every=0.5)
        assert {a["labels"]["job"] for a in alerts} <= {"mistral", OTLP_JOB}
        assert all(a["labels"]["severity"] == "critical" and a["status"]["state"] == "active" for a in alerts)
        warnings = eventually(lambda: firing("MistralUpstreamDown"), within=30.0, every=0.5)
        states = [(a["labels"]["severity"], a["status"]["state"], bool(a["status"]["inhibitedBy"])) for a in warnings]
        assert states == [("warning", "suppressed", True)] * len(warnings)
        with serve_in_thread(emulator.app, port=port):
            eventually(lambda: not firing("MistralAllUpstreamsDown") and not firing("MistralUpstreamDown"),
                       within=60.0, every=0.5)  # fmt: skip
    finally:
        stack.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_every_series_is_the_same_through_the_collector_as_on_the_proxys_metrics(
    protocol: str, emulator: Emulator, upstream: Server, tmp_path: Path
) -> None:
    ports = Ports.free()
    endpoint = f"http://127.0.0.1:{ports.otlp_grpc if protocol == 'grpc' else ports.otlp_http}"
    (tmp_path / "keys.yaml").write_text(TEAMS)  # so that the tenants' series are compared too
    stack = Stack(tmp_path, programs(), ports, upstream.url, {**FAST, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                  "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "API_KEYS_FILE": str(tmp_path / "keys.yaml")},
                  scrape_interval="1s")  # fmt: skip
    stack.start()
    try:
        sent = _scripted_traffic(stack.url("proxy"), emulator)
        direct, pushed = _compare_when_settled(stack)
        assert direct == pushed
        # The stack's readiness probe (GET /) is a request too; the scripted ones are the rest.
        requests = {labels: value for (name, labels), value in direct.items()
                    if name == "mistral_http_requests_total" and ("endpoint", "/") not in labels}  # fmt: skip
        assert sum(requests.values()) == sent
        # The two teams' series among them, the same on both paths (direct == pushed above).
        tenants = {dict(labels)["tenant"] for name, labels in pushed if name == "mistral_tenant_requests_total"}
        assert tenants == {"team-a", "team-b"}
        limited = {dict(labels)["tenant"] for name, labels in pushed if name == "mistral_tenant_rate_limited_total"}
        assert limited == {"team-b"}
        tokens = {dict(labels)["type"] for name, labels in pushed if name == "mistral_tenant_tokens_total"}
        assert tokens == {"input", "output"}
        # And each team's requests in Jaeger and in the Collector's logs, by name, never by key.
        eventually(lambda: _jaeger_tenants(stack) == {"team-a", "team-b"}, within=30.0, every=0.5)
        logged = eventually(lambda: {t for t in ("team-a", "team-b")
                                     if f"-> ollama_proxy.tenant: Str({t})" in stack.log("otel-collector")}
                            == {"team-a", "team-b"}, within=30.0, every=0.5)  # fmt: skip
        assert logged and "key-a" not in stack.log("otel-collector") and "key-b" not in stack.log("otel-collector")
    finally:
        stack.stop()


def _jaeger_tenants(stack: Stack) -> set[str]:
    """The tenants named by the spans Jaeger holds."""
    traces = httpx.get(f"{stack.url('jaeger')}/api/traces", params={"service": OTLP_JOB, "limit": 200}).json()
    return {tags(span).get("ollama_proxy.tenant") for trace in traces["data"] or [] for span in trace["spans"]} - {None}


def _scripted_traffic(proxy: str, emulator: Emulator) -> int:
    """Streamed and not, one upstream error, one client disconnect, and a second team's request, refused for its
    limit; returns the number of requests sent."""
    with httpx.Client(base_url=proxy, timeout=30, headers={"authorization": "Bearer key-b"}) as http:
        assert http.get("/api/tags").status_code == 200
        assert http.get("/api/tags").status_code == 429
    with httpx.Client(base_url=proxy, timeout=30, headers={"authorization": "Bearer key-a"}) as http:
        assert http.post("/api/chat", json={"model": MODEL, "messages": HI, "stream": False}).status_code == 200
        assert http.post("/api/chat", json={"model": MODEL, "messages": HI}).status_code == 200
        assert http.post("/api/generate", json={"model": MODEL, "prompt": "hi"}).status_code == 200
        assert http.get("/api/tags").status_code == 200
        emulator.script(Reply(status=500, error_message="boom"))
        failed = http.post("/api/chat", json={"model": MODEL, "messages": HI, "stream": False})
        assert failed.status_code == 502  # mistral.rs failed: Bad Gateway
        emulator.script(Reply(content="a " * 200, stall_after=2, stall_for=5))
        with http.stream("POST", "/api/chat", json={"model": MODEL, "messages": HI}) as response:
            next(response.iter_lines())  # then hang up mid-stream
    return 8


def _compare_when_settled(stack: Stack) -> tuple[dict[Any, float], dict[Any, float]]:
    """Every contract series as Prometheus has it from the proxy's /metrics (job mistral) and through the
    Collector (job = service.name), once both agree or 30 s have passed. The event-loop lag is recorded four times
    a second, so it never settles: both sides must have its series, whatever their counts."""
    selector = '{__name__=~"mistral_.*|gen_ai_.*", __name__!~".*_created"}'

    def side(job: str) -> dict[Any, float]:
        found = {}
        for series in query(stack, f'{selector[:-1]}, job="{job}"}}'):
            # Target labels differ by design: job and instance name the scrape target or the pushing replica.
            labels = {k: v for k, v in series["metric"].items()
                      if k not in ("job", "instance", "__name__", "engine", "engine_type")}  # fmt: skip
            name = series["metric"]["__name__"]
            lag = name.startswith("mistral_event_loop_lag_seconds")
            found[(name, frozenset(labels.items()))] = 1.0 if lag else float(series["value"][1])
        return found

    def settled() -> tuple[dict[Any, float], dict[Any, float]] | None:
        direct, pushed = side("mistral"), side(OTLP_JOB)
        idle = direct.get(("mistral_active_requests", frozenset())) == 0
        return (direct, pushed) if direct and idle and direct == pushed else None

    try:
        return eventually(settled, within=30.0, every=0.5)
    except AssertionError:
        return side("mistral"), side(OTLP_JOB)  # the caller's assertion shows the difference


def test_the_embedded_engine_traces_down_to_the_engine_span(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "tiny")
    stack = start_stack(tmp_path / "stack", None, MODEL=str(model))
    try:
        trace_id, parent = traceparent()
        reply = httpx.post(f"{stack.url('proxy')}/api/chat", headers={"traceparent": parent}, timeout=60,
                           json={"model": "tiny", "messages": HI, "options": {"num_predict": 4}})  # fmt: skip
        assert reply.status_code == 200
        spans = jaeger_trace(stack, trace_id, 3, named=("POST /api/chat", "chat tiny", "mistralrs chat"))
        server, genai, engine = one(spans, "POST /api/chat"), one(spans, "chat tiny"), one(spans, "mistralrs chat")
        assert parent_of(genai) == server["spanID"] and parent_of(engine) == genai["spanID"]
        assert tags(engine)["span.kind"] == "internal" and tags(genai)["gen_ai.usage.output_tokens"] == 4
    finally:
        stack.stop()


def test_the_hand_written_otlp_receiver_answers_and_reads_as_the_real_collector(
    stack: Stack, upstream: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/otel/otlp_receiver.py stands in for the Collector in fast tests: the same export requests get the
    same answers from both, and what the receiver reads of them is what Jaeger and Prometheus show."""
    with http_receiver() as (endpoint, captured):
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        for name, value in environ.items():  # the exporters read them themselves
            monkeypatch.setenv(name, value)
        telemetry = configure("test", environ=environ)
        with serve_in_thread(create_app(Settings(mistral_url=upstream.url), telemetry=telemetry)) as proxy:
            httpx.post(f"{proxy.url}/api/chat", json={"model": MODEL, "messages": HI, "stream": False})
        telemetry.shutdown()
    exports = [("/v1/traces", request) for request in captured.traces]
    exports += [("/v1/metrics", request) for request in captured.metrics]
    assert captured.spans() and captured.metric_list()
    collector = f"http://127.0.0.1:{stack.ports.otlp_http}"
    with http_receiver() as (receiver, replayed):
        for path, request in exports:
            body, protobuf = request.SerializeToString(), {"content-type": "application/x-protobuf"}
            answers = [httpx.post(f"{base}{path}", content=body, headers=protobuf) for base in (receiver, collector)]
            assert [(a.status_code, a.headers["content-type"]) for a in answers] == [
                (200, protobuf["content-type"])
            ] * 2  # noqa: E501
            kind = trace_service_pb2.ExportTraceServiceResponse if path == "/v1/traces" else (
                metrics_service_pb2.ExportMetricsServiceResponse)  # fmt: skip
            decoded = [kind.FromString(a.content) for a in answers]
            assert decoded[0] == decoded[1] and decoded[0].HasField("partial_success"), decoded
            assert decoded[1].partial_success.error_message == "" and not any(  # nothing rejected
                getattr(decoded[1].partial_success, f"rejected_{what}", 0) for what in ("spans", "data_points")
            )
    # What the receiver read is what the real pipeline shows.
    trace_id = replayed.spans()[0].trace_id.hex()
    sent = sorted(s.name for s in replayed.spans() if s.trace_id.hex() == trace_id)
    assert sorted(s["operationName"] for s in jaeger_trace(stack, trace_id, len(sent), named=sent)) == sent
    instance = next(kv.value.string_value for kv in replayed.metrics[0].resource_metrics[0].resource.attributes
                    if kv.key == "service.instance.id")  # fmt: skip
    exposed = {PROMETHEUS_NAMES[m.name] for m in replayed.metric_list()}

    def shown() -> set[str]:
        series = query(stack, f'{{instance="{instance}", __name__!="target_info"}}')
        return {s["metric"]["__name__"].removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
                for s in series}  # fmt: skip

    eventually(lambda: shown() == exposed, within=30.0, every=0.5)


# How the Collector's Prometheus exporter names each instrument (unit suffix, _total for counters).
PROMETHEUS_NAMES = {
    "mistral_http_requests": "mistral_http_requests_total",
    "mistral_http_request_duration": "mistral_http_request_duration_seconds",
    "mistral_active_requests": "mistral_active_requests",
    "mistral_generate_duration": "mistral_generate_duration_seconds",
    "mistral_generate_tokens": "mistral_generate_tokens_total",
    "mistral_streaming_chunks": "mistral_streaming_chunks_total",
    "mistral_model_load_duration": "mistral_model_load_duration_seconds",
    "mistral_upstream_up": "mistral_upstream_up",
    "gen_ai.client.token.usage": "gen_ai_client_token_usage",
    "gen_ai.client.operation.duration": "gen_ai_client_operation_duration_seconds",
    "gen_ai.server.time_to_first_token": "gen_ai_server_time_to_first_token_seconds",
    "gen_ai.server.time_per_output_token": "gen_ai_server_time_per_output_token_seconds",
    # The SDK's own, of its batch span processor: the {span} unit is an annotation, so no unit suffix.
    "otel.sdk.processor.span.queue.capacity": "otel_sdk_processor_span_queue_capacity",
    "otel.sdk.processor.span.queue.size": "otel_sdk_processor_span_queue_size",
    "otel.sdk.processor.span.processed": "otel_sdk_processor_span_processed_total",
}


# What Jaeger adds to a span's own attributes: the scope, the kind and the status, as tags.
_JAEGER_TAGS = {"otel.scope.name", "otel.scope.version", "span.kind", "otel.status_code", "otel.status_description",
                "error", "internal.span.format"}  # fmt: skip


def _as_attributes(labels: dict[str, str], signal: Signal) -> dict[str, Any]:
    """Prometheus labels back to attribute names, by the table's names (a label it does not know stays as it is)."""
    names = {name.replace(".", "_"): name for name in signal.allowed()}
    dropped = ("job", "instance", "__name__", "le", "engine", "engine_type")  # the scrape's (prometheus.yml)
    return {names.get(label, label): value for label, value in labels.items() if label not in dropped}


def _access_blocks(stack: Stack) -> list[tuple[str, dict[str, str]]]:
    """The access-log records the Collector's debug exporter printed: each one's body and attributes."""
    found = []
    for block in stack.log("otel-collector").split("LogRecord #")[1:]:
        block = re.split(r"ResourceLog #|ScopeLogs #", block)[0]  # the next batch's resource is not this record's
        if "EventName: ollama_proxy.access" not in block:
            continue
        body = re.search(r"Body: Str\((.*)\)", block)
        attributes = dict(re.findall(r"-> ([\w.]+): \w+\((.*)\)", block.split("Attributes:", 1)[1]))
        found.append((body.group(1) if body else "", attributes))
    return found


def test_the_genai_telemetry_through_the_collector_follows_the_conventions(stack: Stack, emulator: Emulator) -> None:
    """tests/otel/test_conventions.py's checks, on what Jaeger, Prometheus and the Collector's log exporter got."""
    since = time.time_ns() // 1000
    with httpx.Client(base_url=stack.url("proxy"), timeout=30) as http:
        sent = traffic(http, emulator, MODEL)

    def genai_spans() -> list[dict[str, Any]]:
        params = {"service": OTLP_JOB, "start": since, "limit": 500}
        traces = httpx.get(f"{stack.url('jaeger')}/api/traces", params=params).json()["data"] or []
        spans = [tags(span) for trace in traces for span in trace["spans"]]
        found = [span for span in spans if "gen_ai.operation.name" in span]
        return found if len(found) >= 12 else []

    wrong: dict[str, list[str]] = {}
    for span in eventually(genai_spans, within=30.0, every=0.5):
        attributes = {key: value for key, value in span.items() if key not in _JAEGER_TAGS}
        failed = span.get("otel.status_code") == "ERROR"
        if problems := violations(SPANS[attributes["gen_ai.operation.name"]], attributes, failed=failed):
            wrong[f"span {sorted(attributes.items())}"] = problems

    prometheus_names = {name.replace(".", "_") + suffix: name for name in METRICS for suffix in ("", "_seconds")}

    def genai_series() -> list[dict[str, str]]:
        series = [s["metric"] for s in query(stack, f'{{__name__=~"gen_ai_.*", job="{OTLP_JOB}"}}')]
        names = {prometheus_names.get(re.sub(r"_(bucket|sum|count)$", "", s["__name__"])) for s in series}
        return series if set(METRICS) <= names else []

    for labels in eventually(genai_series, within=30.0, every=0.5):
        metric = prometheus_names[re.sub(r"_(bucket|sum|count)$", "", labels["__name__"])]
        attributes = _as_attributes(labels, METRICS[metric])
        if problems := violations(METRICS[metric], attributes, failed=None):
            wrong[f"{metric} {sorted(attributes.items())}"] = problems
        if "error.type" not in attributes:
            assert attributes.get("gen_ai.response.model") == MODEL, (metric, attributes)

    records = eventually(lambda: (found := _access_blocks(stack)) and len(found) >= sent and found, within=30.0)
    for body, attributes in records:
        failed = int(attributes["http.response.status_code"]) >= 400 or "error_type=none" not in body
        if problems := violations(ACCESS_LOG, attributes, failed=failed):
            wrong[f"log {body}"] = problems
    assert not wrong, wrong
    assert {attributes.get("error.type") for _, attributes in records} >= {None, "upstream_status", "model_not_found"}
