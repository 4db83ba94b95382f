"""The instruments' one specification: what it builds is what Prometheus scrapes, and the README lists it all."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.commands.check import REQUIRED_SERIES
from otel.metrics import INSTRUMENTS, Instrument, ProxyMetrics
from otel.setup import configure

README = Path(__file__).parents[2] / "README.md"
_RECORD = {"counter": "add", "in_flight": "add", "histogram": "record", "gauge": "set"}


def _sample_names() -> set[str]:
    telemetry = configure("test", environ={})
    try:
        metrics = telemetry.metrics
        for spec in INSTRUMENTS:
            built = getattr(metrics, spec.attribute)
            if spec.kind == "observed":  # read at collection, from the source the application gives it
                built.source = lambda: [(1.0, {})]
            else:
                getattr(built, _RECORD[spec.kind])(1)
        assert telemetry.registry is not None
        text = generate_latest(telemetry.registry).decode()
    finally:
        telemetry.shutdown()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_each_specification_is_one_attribute_of_the_kind_it_says() -> None:
    telemetry = configure("test", environ={})
    metrics = telemetry.metrics
    # Which instruments there are is the README's table (test below), not a second list here: adding a metric is
    # its specification, its recording site and its row (ARCHITECTURE.md, tests/test_recipes.py).
    declared = [name for name, value in vars(ProxyMetrics).items() if isinstance(value, Instrument)]
    assert [spec.attribute for spec in INSTRUMENTS] == declared
    kinds = {"counter": "Counter", "in_flight": "InFlight", "histogram": "Histogram", "gauge": "Gauge",
             "observed": "Observed"}  # fmt: skip
    for spec in INSTRUMENTS:
        built = getattr(metrics, spec.attribute)
        assert (built.name, built.unit, type(built).__name__.lstrip("_")) == (spec.name, spec.unit, kinds[spec.kind])
    assert isinstance(ProxyMetrics.http_requests, Instrument)  # on the class, the specification itself
    telemetry.shutdown()


def test_the_series_names_are_the_exporters() -> None:
    samples = _sample_names()
    for spec in INSTRUMENTS:
        expected = spec.series + ("_bucket" if spec.kind == "histogram" else "")
        assert expected in samples, (spec.name, sorted(samples))


def test_the_readme_table_lists_every_series_and_nothing_else() -> None:
    section = README.read_text().split("### Metrics", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    sdk = ["otel_sdk_processor_span_processed_total"]  # the SDK's own, documented where it appears
    assert listed == [spec.series for spec in INSTRUMENTS] + ["target_info", *sdk]


def test_the_monitoring_check_requires_what_its_traffic_makes() -> None:
    assert REQUIRED_SERIES == tuple(spec.series for spec in INSTRUMENTS if spec.checked)
    assert "mistral_model_load_duration_seconds" not in REQUIRED_SERIES  # no load happens during the check
