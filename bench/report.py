"""Medians over rounds, the tables, and the performance issues' targets (7 and 15) as met / not met."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

DIRECT, PROXY_ON, PROXY_OFF, PROXY_SAMPLED, PROXY_WORKERS, PROXY_POOL, PROXY_TENANTS, FLOOR, FLOOR_AIOHTTP, LITELLM = (
    "direct",
    "proxy-on",
    "proxy-off",
    "proxy-sampled",
    "proxy-workers",
    "proxy-pool",
    "proxy-tenants",
    "floor",
    "floor-aiohttp",
    "litellm",
)
PROXIES = (PROXY_ON, PROXY_OFF, PROXY_SAMPLED, PROXY_WORKERS, PROXY_POOL, PROXY_TENANTS)
TENANTS = 100  # named tenants in the (h) configuration, each with every limit set (never reached)
_LOADGEN_SIDE_BUSY = 0.9
_FOREIGN = 0.05  # above this share of core 0 used by other processes, or stolen, a row is flagged


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str
    stream: bool
    concurrency: int
    peer: bool = False  # LiteLLM takes part (it speaks only the OpenAI route)
    variants: bool = False  # the proxy also runs with traces sampled at 10 % and with two workers
    pooled: bool = False  # the proxy also runs in front of three stand-ins (issue 16's routing cost)
    tenants: bool = False  # the proxy also runs with 100 named tenants, each request with one of their keys


@dataclass(frozen=True)
class Measurement:
    """One load-generator run against one configuration."""

    requests: int
    errors: int
    error_samples: list[str]
    requests_per_s: float
    chunks_per_s: float
    chunks_per_request: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float  # the server under test, process tree
    standin_us_per_request: float
    loadgen_side_busy: float  # share of core 1 used by the load generator and the stand-in
    core0_foreign: float  # share of core 0 used by anything but the server under test
    steal: float  # share of the two cores the hypervisor took

    @classmethod
    def from_load(cls, load: dict[str, Any], server_pid: int, standin_pid: int) -> Measurement:
        cpu, requests = load["cpu_seconds"], load["requests"] + load["errors"]
        seconds = load["seconds"]
        standin_share, server_share = cpu[str(standin_pid)] / seconds, cpu[str(server_pid)] / seconds
        return cls(
            requests=load["requests"],
            errors=load["errors"],
            error_samples=load["error_samples"],
            requests_per_s=load["requests_per_s"],
            chunks_per_s=load["chunks_per_s"],
            chunks_per_request=load["chunks_per_request"],
            p50_ms=load["p50_ms"],
            p99_ms=load["p99_ms"],
            cpu_ms_per_request=cpu[str(server_pid)] * 1000 / requests if requests else math.nan,
            standin_us_per_request=cpu[str(standin_pid)] * 1e6 / requests if requests else math.nan,
            loadgen_side_busy=load["loadgen_cpu"] + standin_share,
            core0_foreign=load["core_busy"]["0"] - (0.0 if server_pid == standin_pid else server_share),
            steal=sum(load["core_steal"].values()) / len(load["core_steal"]),
        )


@dataclass
class Results:
    labels: dict[str, str]
    runs: dict[tuple[str, str], list[Measurement]] = field(default_factory=dict)
    peak_rss_mb: dict[tuple[str, str], float] = field(default_factory=dict)
    ready_seconds: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unquiet: int = 0  # runs started while something else kept a core busy

    def add(self, scenario: str, config: str, measurement: Measurement) -> None:
        self.runs.setdefault((scenario, config), []).append(measurement)

    def median(self, scenario: str, config: str, value: Callable[[Measurement], float]) -> float | None:
        runs = self.runs.get((scenario, config))
        return statistics.median(value(run) for run in runs) if runs else None

    def added(self, scenario: str, config: str, value: Callable[[Measurement], float]) -> float | None:
        """The median over rounds of (this configuration − direct), each round paired with its own direct run."""
        runs, direct = self.runs.get((scenario, config)), self.runs.get((scenario, DIRECT))
        if not runs or not direct:
            return None
        return statistics.median(value(run) - value(base) for run, base in zip(runs, direct, strict=False))


def _number(value: float | None, digits: int = 0, signed: bool = False) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:{'+' if signed else ''},.{digits}f}"


def _row(results: Results, scenario: Scenario, config: str) -> list[str]:
    def median(field: str, digits: int = 0) -> str:
        return _number(results.median(scenario.key, config, attrgetter(field)), digits)

    def added(field: str) -> str:
        value = None if config == DIRECT else results.added(scenario.key, config, attrgetter(field))
        return _number(value, 2, signed=True)

    errors = sum(run.errors for run in results.runs[(scenario.key, config)])
    return [
        results.labels[config],
        median("requests_per_s"),
        median("chunks_per_s") if scenario.stream else "—",
        median("p50_ms", 2),
        added("p50_ms"),
        median("p99_ms", 2),
        added("p99_ms"),
        median("cpu_ms_per_request", 3),
        _number(results.median(scenario.key, config, _per_cpu_second)),
        _number(results.peak_rss_mb.get((scenario.key, config))),
        str(errors),
    ]


_HEADER = [
    "config",
    "req/s",
    "chunks/s",
    "p50 ms",
    "+p50 ms",
    "p99 ms",
    "+p99 ms",
    "CPU ms/req",
    "req/CPU-s",
    "peak RSS MB",
    "errors",
]


def _per_cpu_second(m: Measurement) -> float:
    """Requests per second of the server's CPU time: what scales with cores, whatever the machine."""
    return 1000 / m.cpu_ms_per_request if m.cpu_ms_per_request else math.nan


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def scenario_section(results: Results, scenario: Scenario, configs: Sequence[str]) -> list[str]:
    lines = [f"### {scenario.title}", ""]
    measured = [config for config in configs if (scenario.key, config) in results.runs]
    if measured:
        lines += _table([_row(results, scenario, config) for config in measured])
    lines += [""] + _side_notes(results, scenario, measured)
    for config in configs:
        if (failure := results.failures.get((scenario.key, config))) is not None:
            lines.append(f"- {results.labels[config]}: **failed**: `{failure}`")
        for run in results.runs.get((scenario.key, config), []):
            for sample in run.error_samples:
                lines.append(f"- {results.labels[config]} error: `{sample}`")
    return lines + [""]


def _side_notes(results: Results, scenario: Scenario, configs: Sequence[str]) -> list[str]:
    notes = []
    standin = results.median(scenario.key, DIRECT, lambda m: m.standin_us_per_request)
    if standin:
        unit = "stream" if scenario.stream else "request"
        notes.append(f"- stand-in: {standin:,.0f} µs CPU per {unit}, i.e. ≈ {1e6 / standin:,.0f} {unit}s/s on one core")
    for config in configs:
        chunks = results.median(scenario.key, config, lambda m: m.chunks_per_request)
        busy = results.median(scenario.key, config, lambda m: m.loadgen_side_busy)
        if busy is not None and busy >= _LOADGEN_SIDE_BUSY:
            notes.append(
                f"- {results.labels[config]}: core 1 (load generator + stand-in) was {busy:.0%} busy: "
                "this row may be limited by the load generator, not the server"
            )
        foreign = results.median(scenario.key, config, attrgetter("core0_foreign"))
        steal = results.median(scenario.key, config, attrgetter("steal"))
        if foreign is not None and foreign >= _FOREIGN:
            notes.append(f"- {results.labels[config]}: other processes used {foreign:.0%} of core 0 meanwhile")
        if steal is not None and steal >= _FOREIGN:
            notes.append(f"- {results.labels[config]}: the hypervisor stole {steal:.0%} of the CPU meanwhile")
        if scenario.stream and chunks:
            notes.append(f"- {results.labels[config]}: {chunks:.0f} chunks per response")
    return notes


@dataclass(frozen=True)
class Target:
    text: str
    value: str
    met: bool | None  # None: not measured

    @property
    def status(self) -> str:
        return "not measured" if self.met is None else ("met" if self.met else "**not met**")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(results: Results, scenarios: Sequence[Scenario]) -> list[Target]:
    rps: Callable[[Measurement], float] = lambda m: m.requests_per_s  # noqa: E731
    chunks: Callable[[Measurement], float] = lambda m: m.chunks_per_s  # noqa: E731
    return [
        _threshold(
            "added p50 over direct, JSON /api/chat c1, telemetry on ≤ 0.7 ms",
            results.added("json-c1", PROXY_ON, lambda m: m.p50_ms),
            0.7,
            "{:+.2f} ms",
            below=True,
        ),
        _cpu_per_request(results, scenarios),
        _threshold(
            "JSON c16 req/s, telemetry on ≥ 15× LiteLLM's (LiteLLM on /v1/chat/completions, same reply)",
            _ratio(results.median("json-c16", PROXY_ON, rps), results.median("json-c16", LITELLM, rps)),
            15.0,
            "{:.1f}×",
        ),
        _threshold(
            "JSON c16 req/s, telemetry on ≥ 0.8× the httpx-aiohttp pass-through floor",
            _ratio(results.median("json-c16", PROXY_ON, rps), results.median("json-c16", FLOOR_AIOHTTP, rps)),
            0.8,
            "{:.2f}×",
        ),
        _threshold(
            "JSON c16 req/s, telemetry off ≥ 1.0× the httpx-aiohttp pass-through floor",
            _ratio(results.median("json-c16", PROXY_OFF, rps), results.median("json-c16", FLOOR_AIOHTTP, rps)),
            1.0,
            "{:.2f}×",
        ),
        _telemetry_cost(results, scenarios),
        _tenants_cost(results, scenarios),
        _threshold(
            "streamed /api/chat c64 chunks/s, telemetry on ≥ 0.6× the httpx-aiohttp floor",
            _ratio(results.median("stream-c64", PROXY_ON, chunks), results.median("stream-c64", FLOOR_AIOHTTP, chunks)),
            0.6,
            "{:.2f}×",
        ),
        _threshold(
            "peak RSS of the proxy (telemetry on) under the streaming load ≤ 100 MB",
            max((results.peak_rss_mb.get((s.key, PROXY_ON), 0.0) for s in scenarios if s.stream), default=None) or None,
            100.0,
            "{:.0f} MB",
            below=True,
        ),
        _threshold(
            "`serve` ready (process start → first 200 from GET /), telemetry on, median ≤ 1.5 s",
            statistics.median(results.ready_seconds[PROXY_ON]) if results.ready_seconds.get(PROXY_ON) else None,
            1.5,
            "{:.2f} s",
            below=True,
        ),
        Target(
            "embedded mode: tokens/s through the proxy ≥ 0.95× the Runner called directly "
            "(its own run: `python bench/embedded.py` → `bench/results-embedded.md`)",
            "—",
            None,
        ),
    ]


def _cpu_per_request(results: Results, scenarios: Sequence[Scenario]) -> Target:
    """CPU per non-streamed request with telemetry on, in every such scenario; the worst must be ≤ 1.0 ms."""
    found = {
        s.key: value
        for s in scenarios
        if not s.stream and (value := results.median(s.key, PROXY_ON, attrgetter("cpu_ms_per_request"))) is not None
    }
    text = "CPU per non-streamed /api/chat request, telemetry on ≤ 1.0 ms (worst scenario)"
    if not found:
        return Target(text, "—", None)
    worst = max(found, key=found.__getitem__)
    value = f"{found[worst]:.2f} ms ({worst}); " + ", ".join(f"{key} {ms:.2f}" for key, ms in found.items())
    return Target(text, value, found[worst] <= 1.0)


def _threshold(text: str, value: float | None, limit: float, form: str, below: bool = False) -> Target:
    if value is None:
        return Target(text, "—", None)
    return Target(text, form.format(value), value <= limit if below else value >= limit)


def _telemetry_cost(results: Results, scenarios: Sequence[Scenario]) -> Target:
    """Telemetry on ÷ off throughput in every scenario; the target holds when the worst is ≥ 0.85."""
    ratios = {
        s.title: ratio
        for s in scenarios
        if (
            ratio := _ratio(
                results.median(s.key, PROXY_ON, lambda m: m.requests_per_s),
                results.median(s.key, PROXY_OFF, lambda m: m.requests_per_s),
            )
        )
        is not None
    }
    text = "telemetry on costs ≤ 15 % of throughput against off (worst scenario)"
    if not ratios:
        return Target(text, "—", None)
    worst = min(ratios, key=ratios.__getitem__)
    value = f"{ratios[worst]:.2f}× ({worst}); " + ", ".join(f"{ratio:.2f}" for ratio in ratios.values())
    return Target(text, value, ratios[worst] >= 0.85)


def _tenants_cost(results: Results, scenarios: Sequence[Scenario]) -> Target:
    """CPU per request with 100 limited tenants ÷ without (issue 25), in every scenario that ran both."""
    cpu: Callable[[Measurement], float] = attrgetter("cpu_ms_per_request")
    ratios = {
        s.key: ratio
        for s in scenarios
        if (ratio := _ratio(results.median(s.key, PROXY_TENANTS, cpu), results.median(s.key, PROXY_ON, cpu)))
        is not None
    }
    text = f"{TENANTS} tenants with limits: CPU per request ≤ 1.05× without (telemetry on, worst scenario)"
    if not ratios:
        return Target(text, "—", None)
    worst = max(ratios, key=ratios.__getitem__)
    value = f"{ratios[worst]:.3f}× ({worst}); " + ", ".join(f"{key} {ratio:.3f}" for key, ratio in ratios.items())
    return Target(text, value, ratios[worst] <= 1.05)


def targets_section(found: Sequence[Target]) -> list[str]:
    lines = ["| target (issues 7 and 15) | measured | status |", "|---|---|---|"]
    return lines + [f"| {t.text} | {t.value} | {t.status} |" for t in found] + [""]
