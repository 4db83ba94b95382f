"""Two teams' keys through the proxy: each team's requests and tokens in the metrics, its name on every span of its
requests and in the access log, never a key; wrong keys all count as one value."""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.commands.check import Check, run_check
from app.main import create_app
from app.settings import Settings
from otel.access_log import ACCESS_LOGGER
from otel.setup import configure
from otel.telemetry import Telemetry
from tests.otel.helpers import finished_spans, values, wait_idle
from tests.servers import Server, serve_in_thread
from tests.waiting import eventually

KEYS = "tenants:\n  - name: team-a\n    keys: [key-a]\n  - name: team-b\n    keys: [key-b, key-b2]\n"
SECRETS = ("key-a", "key-b2", "legacy-key", "wrong-")
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def keyed(
    settings: Settings, tmp_path: Path, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> Iterator[tuple[Server, Telemetry]]:
    (tmp_path / "keys.yaml").write_text(KEYS)
    keyed = dataclasses.replace(settings, api_keys=("legacy-key",), api_keys_file=str(tmp_path / "keys.yaml"))
    telemetry = configure("test", environ={}, span_exporters=[span_exporter], metric_readers=[metric_reader])
    try:
        with serve_in_thread(create_app(keyed, telemetry=telemetry)) as server:
            yield server, telemetry
    finally:
        telemetry.shutdown()


def _chat(proxy: Server, key: str, *, anthropic: bool = False, stream: bool = False) -> httpx.Response:
    headers = {"x-api-key": key} if anthropic else {"authorization": f"Bearer {key}"}
    body = {"model": "mistral", "messages": HI, "stream": stream}
    return httpx.post(f"{proxy.url}/api/chat", json=body, headers=headers, timeout=30)


def _access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    def written() -> list[str] | None:
        lines = [record.getMessage() for record in caplog.records if record.name == ACCESS_LOGGER]
        return lines if len(lines) >= count else None

    return eventually(written)


def test_each_team_sees_its_own_requests_tokens_spans_and_log_lines(
    keyed: tuple[Server, Telemetry], metric_reader: InMemoryMetricReader, span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    proxy, telemetry = keyed
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    answers = [_chat(proxy, "key-a"), _chat(proxy, "key-a", stream=True), _chat(proxy, "key-b2", anthropic=True),
               _chat(proxy, "legacy-key"), *[_chat(proxy, f"wrong-{n}") for n in range(20)]]  # fmt: skip
    assert [a.status_code for a in answers] == [200] * 4 + [401] * 20
    wait_idle(metric_reader)
    assert values(metric_reader, "mistral_tenant_requests", "tenant", "endpoint", "status") == {
        ("team-a", "/api/chat", "200"): 2,
        ("team-b", "/api/chat", "200"): 1,
        ("anonymous", "/api/chat", "200"): 1,
        ("anonymous", "/api/chat", "401"): 20,  # twenty wrong keys, one series
    }
    chats = {"team-a": 2, "team-b": 1, "anonymous": 1}
    prompt = answers[0].json()["prompt_eval_count"]
    assert values(metric_reader, "mistral_tenant_tokens", "tenant", "model", "type") == {
        **{(tenant, "mistral-7b", "input"): prompt * n for tenant, n in chats.items()},
        **{(tenant, "mistral-7b", "output"): answers[0].json()["eval_count"] * n for tenant, n in chats.items()},
    }
    lines = _access_lines(caplog, len(answers))
    assert [line.split(" tenant=", 1)[1].split(" ", 1)[0] for line in lines] == [
        "team-a", "team-a", "team-b", "anonymous", *["anonymous"] * 20]  # fmt: skip
    spans = finished_spans(telemetry.tracer_provider, span_exporter, len(answers))
    tenants_by_trace = defaultdict(set)
    for span in spans:
        tenants_by_trace[span.context.trace_id].add((span.attributes or {}).get("ollama_proxy.tenant"))
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert sorted(str((s.attributes or {})["ollama_proxy.tenant"]) for s in servers) == sorted(
        ["team-a", "team-a", "team-b", *["anonymous"] * 21])  # fmt: skip
    assert all(len(tenants) == 1 for tenants in tenants_by_trace.values())  # every span of a request: its tenant
    assert sum(len([s for s in spans if s.context.trace_id == t]) for t in tenants_by_trace) > len(servers)
    recorded = [*lines, *(str(value) for span in spans for value in (span.attributes or {}).values())]
    assert not [text for text in recorded for secret in SECRETS if secret in text]


def test_without_keys_no_tenant_is_recorded(proxy: Server, metric_reader: InMemoryMetricReader) -> None:
    assert httpx.post(f"{proxy.url}/api/chat", json={"model": "mistral", "messages": HI, "stream": False}).is_success
    wait_idle(metric_reader)
    assert values(metric_reader, "mistral_tenant_requests", "tenant", "endpoint", "status") == {}


def test_the_check_command_reports_the_tenants_it_saw(keyed: tuple[Server, Telemetry]) -> None:
    proxy, _ = keyed
    # The event-loop lag's first sample comes a quarter of a second after start-up; the check wants every series.
    eventually(lambda: "mistral_event_loop_lag_seconds" in httpx.get(f"{proxy.url}/metrics").text)
    lines: list[str] = []
    assert run_check(Check(proxy.url, api_key="key-b", say=lines.append)), "\n".join(lines)
    assert "INFO  tenants seen: team-b" in lines
    lines.clear()
    assert not run_check(Check(proxy.url, say=lines.append))  # no key: 401, and it says so
    assert any(line.startswith("FAIL") for line in lines)
