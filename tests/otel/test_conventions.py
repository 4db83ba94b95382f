"""Every GenAI span, GenAI metric point and access-log record the proxy exports, held to the conventions' table
(tests/otel/conventions.py) through the in-memory exporters; the table's names and stability levels held to the
``opentelemetry-semantic-conventions`` package. tests/monitoring/test_pipeline.py holds the same through the real
Collector."""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv import attributes as stable_attributes
from opentelemetry.semconv._incubating import attributes as incubating_attributes
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.trace import SpanKind, StatusCode

from app.main import create_app
from app.settings import Settings
from otel.access_log import ACCESS_LOGGER
from otel.semconv import PROVIDER
from otel.setup import configure
from tests.emulator import Emulator
from tests.otel.conventions import ACCESS_LOG, METRICS, OWN_NAMESPACE, REGISTRY, SPANS, STABLE, traffic, violations
from tests.otel.helpers import points, wait_idle
from tests.servers import serve_in_thread
from tests.waiting import eventually

ROOT = Path(__file__).parents[2]
# Recommended on an inference span, and known to the proxy whenever an answer came.
KNOWN_ON_SUCCESS = {"gen_ai.response.model", "gen_ai.response.id", "gen_ai.usage.input_tokens",
                    "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons"}  # fmt: skip


@pytest.fixture
def exported(
    settings: Settings, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader, InMemoryLogRecordExporter]]:  # fmt: skip
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    logs = InMemoryLogRecordExporter()
    telemetry = configure("test", environ={}, span_exporters=[span_exporter], metric_readers=[metric_reader],
                          log_exporters=[logs])  # fmt: skip
    try:
        with serve_in_thread(create_app(settings, telemetry=telemetry)) as server:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                sent = traffic(http, emulator)
            wait_idle(metric_reader)
            eventually(lambda: len(_access_records(logs)) == sent)
        telemetry.tracer_provider.force_flush()
        yield span_exporter, metric_reader, logs
    finally:
        telemetry.shutdown()


def _access_records(exporter: InMemoryLogRecordExporter) -> list[Any]:
    return [r for r in exporter.get_finished_logs() if r.instrumentation_scope.name == ACCESS_LOGGER]  # type: ignore[union-attr]


def test_every_genai_span_follows_the_table(exported: Any) -> None:
    spans = [s for s in exported[0].get_finished_spans() if s.attributes and "gen_ai.operation.name" in s.attributes]
    operations = sorted({str(s.attributes["gen_ai.operation.name"]) for s in spans})  # type: ignore[index]
    assert operations == ["chat", "embeddings", "text_completion"]
    wrong = {}
    for span in spans:
        attributes = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT and span.name == f"{attributes['gen_ai.operation.name']} mistral-7b"
        failed = span.status.status_code is StatusCode.ERROR
        if found := violations(SPANS[str(attributes["gen_ai.operation.name"])], attributes, failed=failed):
            wrong[span.name, failed] = found
        if not failed and attributes["gen_ai.operation.name"] != "embeddings":  # recommended, and the proxy knows
            assert KNOWN_ON_SUCCESS <= set(attributes), attributes
    assert not wrong, wrong
    assert sum(s.status.status_code is StatusCode.ERROR for s in spans) == 2  # the 500 and the error line
    streamed = [s for s in spans if (s.attributes or {}).get("gen_ai.request.stream") is True]
    assert len(streamed) == 5  # chat and generate, /v1 chat and responses streamed, the chat ended by an error line
    seeded = [s for s in spans if (s.attributes or {}).get("gen_ai.request.seed") == 7]
    assert len(seeded) == 1


def test_every_genai_metric_point_follows_the_table(exported: Any) -> None:
    reader = exported[1]
    wrong = {}
    for name, signal in METRICS.items():
        found = points(reader, name)
        assert found, f"{name} was not recorded"
        for attributes in map(dict, found):
            if problems := violations(signal, attributes, failed=None):
                wrong[name, tuple(sorted(attributes.items()))] = problems
            if "error.type" not in attributes:  # an answer came: the model that gave it is known
                assert attributes.get("gen_ai.response.model") == "mistral-7b", (name, attributes)
    assert not wrong, wrong
    durations = [dict(a) for a in points(reader, "gen_ai.client.operation.duration")]
    assert sorted(str(a.get("error.type")) for a in durations if "error.type" in a) == [
        "upstream_error", "upstream_status"]  # fmt: skip


def test_every_access_log_record_follows_the_table(exported: Any) -> None:
    records = _access_records(exported[2])
    wrong = {}
    for record in records:
        attributes = dict(record.log_record.attributes or {})
        failed = attributes["http.response.status_code"] >= 400 or "error_type=none" not in str(record.log_record.body)
        if problems := violations(ACCESS_LOG, attributes, failed=failed):
            wrong[str(record.log_record.body)] = problems
    assert not wrong, wrong
    errors = sorted(str(dict(r.log_record.attributes or {}).get("error.type")) for r in records)
    assert errors.count("None") == len(records) - 3
    assert sorted(e for e in errors if e != "None") == ["model_not_found", "upstream_error", "upstream_status"]


def _docstrings(module: Any) -> dict[str, str]:
    """A semconv module's constants and the docstrings that follow them (where the package marks deprecation)."""
    tree = ast.parse(inspect.getsource(module))
    found: dict[str, str] = {}
    for node, following in zip(tree.body, tree.body[1:], strict=False):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(getattr(node, "value", None), ast.Constant):
            value = node.value.value  # type: ignore[union-attr]
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                found[str(value)] = str(following.value.value)
            else:
                found.setdefault(str(value), "")
    return found


def _package_attributes(package: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for module in pkgutil.iter_modules(package.__path__):
        found.update(_docstrings(importlib.import_module(f"{package.__name__}.{module.name}")))
    return found


def test_the_tables_names_and_stability_are_the_packages() -> None:
    stable, incubating = _package_attributes(stable_attributes), _package_attributes(incubating_attributes)
    signals = [*METRICS.values(), *SPANS.values(), ACCESS_LOG]
    names = {name for signal in signals for name in signal.allowed() if not name.startswith(OWN_NAMESPACE)}
    assert names - set(stable) - set(incubating) == set(), "names the package does not know"
    assert {name for name in names if name in stable} == STABLE
    # The package marks the GenAI names as moved to their own repository; none is replaced by another name.
    replaced = {name: incubating[name] for name in names if "Replaced by" in incubating.get(name, "")}
    assert replaced == {}
    metrics = {value for key, value in vars(gen_ai_metrics).items() if key.startswith("GEN_AI_")}
    assert set(METRICS) <= metrics
    assert REGISTRY == "v1.41.1"


def test_the_provider_name_is_outside_the_enum_and_the_readme_says_so() -> None:
    assert PROVIDER not in {member.value for member in GenAiProviderNameValues}
    readme = (ROOT / "README.md").read_text()
    assert "`gen_ai.provider.name` is `mistral_rs`" in readme
