"""The telemetry contract's instruments: each specified once, as a ``ProxyMetrics`` attribute.

A specification (name, kind, unit, description, buckets) creates the instrument, names its Prometheus series
(``INSTRUMENTS``; the monitoring check and a README test read them), and types the attribute the recording site
uses. Adding a metric is one line here and its recording site.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    Observation,
    get_meter_provider,
)
from opentelemetry.metrics import _Gauge as Gauge

from otel.semconv import OTHER, Buckets, Metric

__all__ = ["INSTRUMENTS", "METER_NAME", "InFlight", "Instrument", "ModelLabels", "Observed", "ProxyMetrics"]

METER_NAME = "mistral-ollama-proxy"

InstrumentT = TypeVar("InstrumentT")


@dataclass(frozen=True)
class Instrument(Generic[InstrumentT]):
    """One instrument of the contract; as a class attribute of ``ProxyMetrics``, the instrument itself once built."""

    name: str
    kind: str  # counter, histogram, gauge, in_flight (see InFlight) or observed (see Observed)
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None
    checked: bool = True  # present after the monitoring check's traffic (``mistral-ollama-proxy check``)
    attribute: str = field(default="", compare=False)

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "attribute", name)

    @overload
    def __get__(self, obj: None, owner: type) -> Instrument[InstrumentT]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> InstrumentT: ...
    def __get__(self, obj: object | None, owner: type) -> Instrument[InstrumentT] | InstrumentT:
        # Never reached on an instance: the built instrument sits in its __dict__, found before this descriptor.
        return self

    @property
    def exemplars(self) -> bool:
        """Durations carry exemplars (the dashboard's latency panels link them to traces); counts do not: each
        exemplar offer costs about as much as the record itself, once per reader."""
        return self.kind == "histogram" and self.unit == "s"

    @property
    def series(self) -> str:
        """The name the OpenTelemetry Prometheus exporter gives it: unit word and ``_total`` added, annotations not."""
        name = self.name.replace(".", "_") + ("_seconds" if self.unit == "s" else "")
        return name + "_total" if self.kind == "counter" else name

    def build(self, meter: Meter) -> Any:
        if self.kind == "in_flight":
            return InFlight(meter, self.name, self.unit, self.description)
        if self.kind == "observed":
            return Observed(meter, self.name, self.unit, self.description)
        create: Callable[..., Any] = getattr(meter, f"create_{self.kind}")
        if self.buckets is not None:
            return create(self.name, unit=self.unit, description=self.description,
                          explicit_bucket_boundaries_advisory=self.buckets)  # fmt: skip
        return create(self.name, unit=self.unit, description=self.description)


class InFlight:
    """An up-down count read when metrics are collected: ``add`` is an integer addition, not an SDK record (two
    per request, each offered to every reader), and the series is the same ``UpDownCounter`` gauge."""

    __slots__ = ("name", "unit", "value")

    def __init__(self, meter: Meter, name: str, unit: str, description: str) -> None:
        self.name, self.unit, self.value = name, unit, 0
        meter.create_observable_up_down_counter(name, [self._observe], unit=unit, description=description)

    def add(self, amount: int) -> None:
        self.value += amount

    def _observe(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(self.value)]


class Observed:
    """A gauge read when metrics are collected, from what ``source`` returns then: ``(value, attributes)`` pairs
    (none: no series). The application sets the source; until then the gauge has no series."""

    __slots__ = ("name", "source", "unit")

    def __init__(self, meter: Meter, name: str, unit: str, description: str) -> None:
        self.name, self.unit = name, unit
        self.source: Callable[[], Iterable[tuple[float, dict[str, str]]]] = tuple
        meter.create_observable_gauge(name, [self._observe], unit=unit, description=description)

    def _observe(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(value, attributes) for value, attributes in self.source()]


class ProxyMetrics:
    """Every instrument, created once from its specification."""

    http_requests: Instrument[Counter] = Instrument(
        Metric.HTTP_REQUESTS, "counter", "{request}", "Finished HTTP requests"
    )
    http_request_duration: Instrument[Histogram] = Instrument(
        Metric.HTTP_REQUEST_DURATION, "histogram", "s", "Request start to last byte sent", Buckets.HTTP
    )
    active_requests: Instrument[InFlight] = Instrument(
        Metric.ACTIVE_REQUESTS, "in_flight", "{request}", "Requests in flight, streams included"
    )
    generate_duration: Instrument[Histogram] = Instrument(
        Metric.GENERATE_DURATION, "histogram", "s", "Upstream call start to last token", Buckets.GENERATE
    )
    generate_tokens: Instrument[Counter] = Instrument(
        Metric.GENERATE_TOKENS, "counter", "{token}", "Completion tokens generated"
    )
    streaming_chunks: Instrument[Counter] = Instrument(
        Metric.STREAMING_CHUNKS, "counter", "{chunk}", "NDJSON/SSE chunks written to clients"
    )
    model_load_duration: Instrument[Histogram] = Instrument(
        Metric.MODEL_LOAD_DURATION, "histogram", "s", "Measured model loads", Buckets.MODEL_LOAD, checked=False
    )
    upstream_up: Instrument[Gauge] = Instrument(
        Metric.UPSTREAM_UP, "gauge", "", "1 when mistral.rs answers its health check, else 0"
    )
    event_loop_lag: Instrument[Histogram] = Instrument(
        Metric.EVENT_LOOP_LAG, "histogram", "s", "How late the event loop ran a timer", Buckets.EVENT_LOOP_LAG
    )
    tenant_requests: Instrument[Counter] = Instrument(
        Metric.TENANT_REQUESTS, "counter", "{request}", "Finished HTTP requests per tenant", checked=False
    )  # with API keys only
    tenant_tokens: Instrument[Counter] = Instrument(
        Metric.TENANT_TOKENS, "counter", "{token}", "Input and output tokens per tenant", checked=False
    )
    tenant_rate_limited: Instrument[Counter] = Instrument(
        Metric.TENANT_RATE_LIMITED, "counter", "{request}", "Requests refused for a tenant's limit", checked=False
    )
    tenant_limits: Instrument[Observed] = Instrument(
        Metric.TENANT_LIMITS,
        "observed",
        "",
        "Each tenant's configured limits, as the keys file states them",
        checked=False,
    )
    quota_store_up: Instrument[Observed] = Instrument(
        Metric.QUOTA_STORE_UP,
        "observed",
        "",
        "1 when the shared quota store answers, else 0 (limits per replica)",
        checked=False,
    )
    token_usage: Instrument[Histogram] = Instrument(
        Metric.TOKEN_USAGE, "histogram", "{token}", "Input and output tokens per GenAI operation", Buckets.TOKENS
    )
    operation_duration: Instrument[Histogram] = Instrument(
        Metric.OPERATION_DURATION, "histogram", "s", "GenAI operation duration", Buckets.OPERATION
    )
    time_to_first_token: Instrument[Histogram] = Instrument(
        Metric.TIME_TO_FIRST_TOKEN, "histogram", "s", "Request start to first token sent", Buckets.TIME_TO_FIRST_TOKEN
    )
    time_per_output_token: Instrument[Histogram] = Instrument(
        Metric.TIME_PER_OUTPUT_TOKEN,
        "histogram",
        "s",
        "Decode time per output token after the first",
        Buckets.TIME_PER_OUTPUT_TOKEN,
        checked=False,
    )  # a one-chunk answer has none

    def __init__(self, meter_provider: MeterProvider | None = None, version: str = "") -> None:
        meter = (meter_provider or get_meter_provider()).get_meter(METER_NAME, version)
        for spec in INSTRUMENTS:
            self.__dict__[spec.attribute] = spec.build(meter)


INSTRUMENTS: tuple[Instrument[Any], ...] = tuple(
    value for value in vars(ProxyMetrics).values() if isinstance(value, Instrument)
)


class ModelLabels:
    """Bounded ``model`` label values: the first ``limit`` distinct models, then ``other``.

    The proxy only passes ids of models mistral.rs serves; the bound is a second line of defence.
    """

    def __init__(self, limit: int = 100) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, model: str) -> str:
        if model in self._seen:
            return model
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(model)
        return model
