"""Where the proxy's CPU goes under one benchmark scenario: py-spy samples, grouped by component.

    python bench/cpu_profile.py [--scenario json-c16] [--telemetry on|off] [--duration 8]

Starts the stand-in and the OTLP sink (core 1) and the proxy (core 0) as ``run.py`` does, drives the scenario with
``load.py`` while ``py-spy record`` samples the proxy, then attributes every busy sample to the innermost frame
that belongs to a known component (the OpenTelemetry export thread as a whole). Prints a table and writes it with
the raw collapsed stacks (open them in https://www.speedscope.app) next to ``--output``. Sampling pauses the
proxy, so its throughput while profiled is lower than in ``run.py``; the shares are what count.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from report import PROXY_OFF, PROXY_ON, PROXY_TENANTS
from run import (
    BENCH,
    LOAD_CORE,
    ROOT,
    SCENARIOS,
    Options,
    commit,
    machine,
    measure,
    publish,
    start_helper,
    start_proxy,
)

# (component, substrings of a frame's file path); the first component found from the innermost frame wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OpenTelemetry SDK: metrics", ("opentelemetry/sdk/metrics",)),
    ("OpenTelemetry SDK+API: spans, context", ("opentelemetry/sdk/", "opentelemetry/trace/", "opentelemetry/context",
                                              "opentelemetry/attributes", "opentelemetry/propagat")),
    ("contrib httpx instrumentation", ("instrumentation/httpx",)),
    ("contrib helpers: semconv, URL redaction, suppression", ("instrumentation/asgi", "instrumentation/_semconv",
                                                              "opentelemetry/util/http", "instrumentation/utils")),
    ("otel/ (the proxy's telemetry)", (f"{ROOT}/otel/",)),
    ("app/ (translation, limits, routes)", (f"{ROOT}/app/",)),
    ("httpx (upstream client API)", ("/httpx/", "/httpx_aiohttp/")),
    ("aiohttp (upstream transport)", ("/aiohttp/", "/yarl/", "/multidict/")),
    ("starlette", ("/starlette/",)),
    ("hypercorn + h11 (HTTP server)", ("/hypercorn/", "/h11/")),
)  # fmt: skip
EXPORT_THREAD = "OpenTelemetry export threads (encode + send)"
LOOP = "event loop, asyncio, stdlib"
_ENTRY = f"{ROOT}/app/commands/serve.py"  # runs the event loop: what is only under it is the loop's own work
IDLE_FRAMES = ("threading.py", "selectors.py", "queue.py")


def component(frames: Sequence[str]) -> str:
    if any("BatchProcessor" in frame or "PeriodicExportingMetricReader" in frame for frame in frames):
        return EXPORT_THREAD
    for frame in reversed(frames):
        if _ENTRY in frame:
            return LOOP
        for name, needles in COMPONENTS:
            if any(needle in frame for needle in needles):
                return name
    return LOOP


def _idle(frames: Sequence[str]) -> bool:
    """A thread parked in a wait (exporters between exports) is not work."""
    leaf = frames[-1]
    return any(name in leaf for name in IDLE_FRAMES) and ("wait" in leaf or "select" in leaf or "get" in leaf)


def shares(collapsed: Iterable[str]) -> tuple[int, list[tuple[str, float]]]:
    counts: collections.Counter[str] = collections.Counter()
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        if stack and not _idle(frames):
            counts[component(frames)] += int(count)
    busy = sum(counts.values())
    return busy, [(name, count / busy) for name, count in counts.most_common()] if busy else []


def render(scenario: str, telemetry: str, rate: str, busy: int, table: list[tuple[str, float]], argv: list[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Profile: {scenario}, telemetry {telemetry}",
        "",
        f"- date: {now}; machine: {machine()}; commit: {commit()}",
        f"- command: `python bench/cpu_profile.py {' '.join(argv)}`",
        f"- load while sampled: {rate}; {busy} busy samples (py-spy, 200 Hz)",
        "",
        "| component | share of the proxy's busy samples |",
        "|---|---|",
        *(f"| {name} | {share:.1%} |" for name, share in table),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=[s.key for s in SCENARIOS], default="json-c16")
    parser.add_argument("--telemetry", choices=["on", "off", "tenants"], default="on",
                        help="tenants: on, with run.py's 100 tenants and their keys (config h)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--output", type=Path, help="default bench/profile-<scenario>-<telemetry>.md")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    scenario = next(s for s in SCENARIOS if s.key == args.scenario)
    output: Path = args.output or BENCH / f"profile-{scenario.key}-{args.telemetry}.md"
    workdir = Path(tempfile.mkdtemp(prefix="mistral-ollama-profile-"))
    options = Options(1, args.duration, 1.0, False, None, (), {}, output, workdir)
    config = {"on": PROXY_ON, "off": PROXY_OFF, "tenants": PROXY_TENANTS}[args.telemetry]
    os.sched_setaffinity(0, {LOAD_CORE})
    standin = start_helper("standin", "standin.py", workdir)
    sink = start_helper("sink", "sink.py", workdir)
    proxy = start_proxy(config, standin.url, sink.url, options)
    raw = output.with_suffix(".collapsed.txt")
    try:
        record = [spy, "record", "--pid", str(proxy.pid), "--rate", "200", "--duration", str(int(args.duration) + 1),
                  "--format", "raw", "--full-filenames", "--output", str(raw)]  # fmt: skip
        sampler = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = measure(proxy, standin, config, scenario, options)
        sampler.wait(timeout=60)
    finally:
        for server in (proxy, sink, standin):
            server.stop()
    busy, table = shares(raw.read_text().splitlines())
    rate = f"{result.requests_per_s:,.0f} req/s" + (f", {result.chunks_per_s:,.0f} chunks/s" if scenario.stream else "")
    publish(render(scenario.title, args.telemetry, rate, busy, table, argv), output)
    print(f"stacks (for speedscope): {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
