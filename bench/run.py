"""The proxy's benchmark, in one command (issue 7):

    python bench/run.py [--quick] [--rounds 3] [--duration 5] [--litellm]

Starts the stand-in upstream (``standin.py``) and an OTLP sink (``sink.py``) on core 1, then for each scenario
starts the configurations on core 0 — (b) the proxy with telemetry fully on, (c) the proxy with telemetry off,
(d) the bare pass-through floor (``floor.py``), (e) the LiteLLM proxy with ``--litellm``, and in two scenarios
(b″) traces sampled at 10 % and (f) two workers, in two (g) three upstreams — and measures them and
(a) the stand-in itself with the load generator (``load.py``, core 1), alternated over the rounds
(a b c d e, a b c d e, …). Reports medians, the added latency over (a), the server's CPU time per request and
peak RSS, and the issue's targets; writes them to ``bench/results.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peer
import procs
from procs import Server, StartError
from report import (
    DIRECT,
    FLOOR,
    FLOOR_AIOHTTP,
    LITELLM,
    PROXIES,
    PROXY_OFF,
    PROXY_ON,
    PROXY_POOL,
    PROXY_SAMPLED,
    PROXY_TENANTS,
    PROXY_WORKERS,
    TENANTS,
    Measurement,
    Results,
    Scenario,
    scenario_section,
    targets,
    targets_section,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVER_CORE, LOAD_CORE = 0, 1
MODEL = "bench-model"
CHUNKS = 100
_MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
# The proxy reads these (and a .env file, hence its own working directory): none may leak in from the caller.
_PROXY_VARIABLES = (
    "MISTRAL_URL MODEL BIND_ADDRESS WORKERS API_KEYS API_KEYS_FILE METRICS_TOKEN MAX_CONCURRENT_REQUESTS "
    "MAX_QUEUED_REQUESTS UPSTREAM_TRANSPORT REQUEST_TIMEOUT_SECS MODEL_ALIASES CORS_ALLOWED_ORIGINS"
).split()

SCENARIOS = (
    Scenario("json-c1", "non-streaming /api/chat, concurrency 1", "/api/chat", False, 1, pooled=True),
    Scenario(
        "json-c16",
        "non-streaming /api/chat, concurrency 16",
        "/api/chat",
        False,
        16,
        peer=True,
        variants=True,
        pooled=True,
        tenants=True,
    ),
    Scenario("json-c64", "non-streaming /api/chat, concurrency 64", "/api/chat", False, 64),
    Scenario("stream-c16", f"streamed /api/chat ({CHUNKS} chunks), concurrency 16", "/api/chat", True, 16),
    Scenario(
        "stream-c64",
        f"streamed /api/chat ({CHUNKS} chunks), concurrency 64",
        "/api/chat",
        True,
        64,
        variants=True,
        tenants=True,
    ),
    Scenario(
        "openai-stream-c16",
        f"streamed /v1/chat/completions ({CHUNKS} chunks), concurrency 16",
        "/v1/chat/completions",
        True,
        16,
        peer=True,
    ),
)


@dataclass(frozen=True)
class Options:
    rounds: int
    duration: float
    warmup: float
    litellm: bool
    json_tokens: int | None
    floors: tuple[str, ...]
    proxy_env: dict[str, str]
    output: Path
    workdir: Path
    scenarios: tuple[str, ...] = ()
    variants: bool = True


def _tokens(stream: bool, json_tokens: int | None) -> int | None:
    """Streams ask for 100 chunks; JSON replies ask for nothing (the stand-in's default: 100 tokens) unless told."""
    return CHUNKS if stream else json_tokens


def ollama_body(stream: bool, json_tokens: int | None) -> dict[str, Any]:
    tokens = _tokens(stream, json_tokens)
    options = {"options": {"num_predict": tokens}} if tokens else {}
    return {"model": MODEL, "messages": _MESSAGES, "stream": stream, **options}


def openai_body(stream: bool, json_tokens: int | None) -> dict[str, Any]:
    tokens = _tokens(stream, json_tokens)
    return {"model": MODEL, "messages": _MESSAGES, "stream": stream, **({"max_tokens": tokens} if tokens else {})}


def request_for(config: str, scenario: Scenario, json_tokens: int | None) -> tuple[str, dict[str, Any]]:
    """The path and body each configuration gets: the proxy speaks Ollama, the others the OpenAI equivalent."""
    openai = openai_body(scenario.stream, json_tokens)
    if config in PROXIES:
        ollama = scenario.path == "/api/chat"
        return scenario.path, ollama_body(scenario.stream, json_tokens) if ollama else openai
    if config in (FLOOR, FLOOR_AIOHTTP):
        return scenario.path, openai
    return "/v1/chat/completions", openai


# --- starting things ------------------------------------------------------------------------------------------------


def _python_script(name: str) -> list[str]:
    return [sys.executable, str(BENCH / name)]


def start_helper(name: str, script: str, workdir: Path) -> Server:
    port = procs.free_port()
    command = [*_python_script(script), "--port", str(port)]
    ready = "/health" if script == "standin.py" else "/stats"
    return procs.start(name, command, url=f"http://127.0.0.1:{port}", ready_path=ready, log=workdir / f"{name}.log")


def _proxy_executable() -> list[str]:
    beside = Path(sys.executable).parent / "mistral-ollama-proxy"
    found = str(beside) if beside.exists() else shutil.which("mistral-ollama-proxy")
    return [found] if found else [sys.executable, "-m", "app.commands"]


def _proxy_env(upstream: str, bind: str, telemetry: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in _PROXY_VARIABLES}
    return {**env, "MISTRAL_URL": upstream, "BIND_ADDRESS": bind, **telemetry, **extra}


def telemetry_env(config: str, sink: str) -> dict[str, str]:
    if config == PROXY_OFF:
        return {"OTEL_SDK_DISABLED": "true"}
    on = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",  # 100 %, batch-exported
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",  # so that metric pushes fall inside the measured windows
    }
    if config == PROXY_SAMPLED:
        return {**on, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    if config == PROXY_WORKERS:  # both on core 0: requests per CPU-second is what carries over to more cores
        return {**on, "WORKERS": "2"}  # metrics by OTLP alone, as several workers require
    return on


def tenants_file(workdir: Path) -> tuple[Path, Path]:
    """The (h) configuration's keys file: TENANTS tenants, each key as its digest, each with every limit set far
    above what the load reaches; and the plain keys, one per line, for the load generator to rotate through."""
    keys = [f"bench-key-{n:03d}" for n in range(TENANTS)]
    limits = "{requests_per_minute: 100000000, tokens_per_minute: 100000000000, concurrent: 10000}"
    lines = ["tenants:"]
    for n, key in enumerate(keys):
        digest = hashlib.sha256(key.encode()).hexdigest()
        lines += [f"  - name: team-{n:03d}", f'    keys: ["sha256:{digest}"]', f"    limits: {limits}"]
    (workdir / "tenants.yaml").write_text("\n".join(lines) + "\n")
    (workdir / "tenant-keys.txt").write_text("\n".join(keys) + "\n")
    return workdir / "tenants.yaml", workdir / "tenant-keys.txt"


def start_proxy(config: str, upstream: str, sink: str, options: Options) -> Server:
    """``upstream`` is one URL, or (for the pool) several separated by commas."""
    port = procs.free_port()
    extra = dict(options.proxy_env)
    if config == PROXY_TENANTS:
        extra["API_KEYS_FILE"] = str(tenants_file(options.workdir)[0])
    env = _proxy_env(upstream, f"127.0.0.1:{port}", telemetry_env(config, sink), extra)
    home = options.workdir / config
    home.mkdir(exist_ok=True)
    command = [*_proxy_executable(), "serve", "--log-level", "warning"]
    return procs.start(
        config,
        command,
        url=f"http://127.0.0.1:{port}",
        ready_path="/",
        log=options.workdir / f"{config}.log",
        env=env,
        cwd=home,
        core=SERVER_CORE,
    )


def start_floor(config: str, upstream: str, options: Options) -> Server:
    port = procs.free_port()
    transport = "aiohttp" if config == FLOOR_AIOHTTP else "httpx"
    command = [*_python_script("floor.py"), "--upstream", upstream, "--port", str(port), "--transport", transport]
    url = f"http://127.0.0.1:{port}"
    return procs.start(
        config, command, url=url, ready_path="/", log=options.workdir / f"{config}.log", core=SERVER_CORE
    )


def start_litellm(upstream: str, options: Options) -> Server:
    port = procs.free_port()
    config = peer.write_config(options.workdir / "litellm.yaml", upstream, MODEL)
    env = {**os.environ, **peer.ENV}
    return procs.start(
        LITELLM,
        peer.command(config, port),
        url=f"http://127.0.0.1:{port}",
        ready_path=peer.READY_PATH,
        log=options.workdir / "litellm.log",
        env=env,
        core=SERVER_CORE,
        timeout=180,
    )


def start_config(config: str, standin: Server, sink: Server, options: Options, pool: Sequence[Server] = ()) -> Server:
    if config == DIRECT:
        return standin
    if config == PROXY_POOL:
        return start_proxy(config, ",".join(s.url for s in (standin, *pool)), sink.url, options)
    if config in PROXIES:
        return start_proxy(config, standin.url, sink.url, options)
    if config == LITELLM:
        return start_litellm(standin.url, options)
    return start_floor(config, standin.url, options)


# --- measuring ------------------------------------------------------------------------------------------------------


def configs_for(scenario: Scenario, options: Options, results: Results) -> list[str]:
    configs = [DIRECT, PROXY_ON, PROXY_OFF, *options.floors]
    if scenario.variants and options.variants:
        configs += [PROXY_SAMPLED, PROXY_WORKERS]
    if scenario.tenants:
        configs.append(PROXY_TENANTS)
    if scenario.pooled and options.variants:
        configs.append(PROXY_POOL)
    if scenario.peer and options.litellm and LITELLM not in results.skipped:
        configs.append(LITELLM)
    return configs


def measure(server: Server, standin: Server, config: str, scenario: Scenario, options: Options) -> Measurement:
    path, body = request_for(config, scenario, options.json_tokens)
    command = [
        *_python_script("load.py"),
        *("--url", server.url + path, "--body", json.dumps(body)),
        *("--concurrency", str(scenario.concurrency), "--duration", str(options.duration)),
        *("--warmup", str(options.warmup), "--cpu", str(LOAD_CORE)),
        *("--watch-pid", str(server.pid), "--watch-pid", str(standin.pid)),
        *(("--keys-file", str(tenants_file(options.workdir)[1])) if config == PROXY_TENANTS else ()),
    ]
    timeout = options.warmup + options.duration + 180
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr.strip()[-1500:]}")
    return Measurement.from_load(json.loads(done.stdout), server.pid, standin.pid)


@contextlib.contextmanager
def running(
    scenario: Scenario, standin: Server, sink: Server, options: Options, results: Results, pool: Sequence[Server]
) -> Iterator[dict[str, Server]]:
    """The scenario's configurations, freshly started (so that peak RSS is this scenario's), stopped after."""
    servers: dict[str, Server] = {}
    try:
        for config in configs_for(scenario, options, results):
            try:
                servers[config] = server = start_config(config, standin, sink, options, pool)
            except StartError as exc:
                results.failures[(scenario.key, config)] = str(exc)
                continue
            if server is not standin:
                results.ready_seconds.setdefault(config, []).append(server.ready_seconds)
        yield servers
    finally:
        for config, server in servers.items():
            if server is not standin:
                results.peak_rss_mb[(scenario.key, config)] = procs.peak_rss_mb(server.pid)
                server.stop()


def run_scenario(
    scenario: Scenario, standin: Server, sink: Server, options: Options, results: Results, pool: Sequence[Server] = ()
) -> None:
    """``pool``: the other stand-ins of (g), the proxy in front of several upstreams."""
    print(f"\n== {scenario.title}", flush=True)
    with running(scenario, standin, sink, options, results, pool) as servers:
        everyone = [server.pid for server in servers.values()] + [sink.pid] + [other.pid for other in pool]
        for round_ in range(options.rounds):
            for config, server in servers.items():
                if (scenario.key, config) in results.failures:
                    continue
                if not procs.settle(everyone):
                    results.unquiet += 1
                try:
                    measurement = measure(server, standin, config, scenario, options)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    results.failures[(scenario.key, config)] = str(exc)
                    continue
                results.add(scenario.key, config, measurement)
                _progress(round_, config, measurement)
        results.peak_rss_mb[(scenario.key, DIRECT)] = procs.peak_rss_mb(standin.pid)
        if PROXY_ON in servers and scenario.key == SCENARIOS[0].key:
            status = procs.http_status(servers[PROXY_ON].url + "/metrics")
            results.notes.append(f"telemetry on: GET /metrics answered {status} (pull endpoint on)")


def _progress(round_: int, config: str, m: Measurement) -> None:
    print(
        f"  round {round_ + 1} {config:>13}: {m.requests_per_s:8,.0f} req/s {m.chunks_per_s:9,.0f} chunks/s "
        f"p50 {m.p50_ms:7.2f} ms p99 {m.p99_ms:7.2f} ms cpu {m.cpu_ms_per_request:6.3f} ms/req "
        f"errors {m.errors} (core 1 {m.loadgen_side_busy:.0%})",
        flush=True,
    )


# --- reporting ------------------------------------------------------------------------------------------------------


def _command_output(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False).stdout
    except OSError:
        return ""


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in _command_output(["lscpu"]).splitlines() if "Model name" in line),
        "unknown CPU",
    )
    return f"{model}, {os.cpu_count()} cores, Linux {os.uname().release}"


def commit() -> str:
    head = _command_output(["git", "rev-parse", "--short", "HEAD"]).strip() or "unknown"
    changed = [
        line[3:]
        for line in _command_output(["git", "status", "--porcelain"]).splitlines()
        if not line[3:].startswith(("bench/", "tests/test_bench.py"))
    ]
    return head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def code_state() -> str:
    """What the proxy runs: the committed trees of app/ and otel/, plus any uncommitted change or new file there."""
    paths = ["app", "otel", "pyproject.toml"]
    parts = [
        _command_output(["git", "rev-parse", *(f"HEAD:{path}" for path in paths)]),
        _command_output(["git", "diff", "HEAD", "--", *paths]),
        _command_output(["git", "ls-files", "--others", "--exclude-standard", "--", *paths]),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def labels(litellm_version: str | None) -> dict[str, str]:
    return {
        DIRECT: "(a) direct to the stand-in",
        PROXY_ON: "(b) proxy, telemetry on",
        PROXY_OFF: "(c) proxy, telemetry off",
        PROXY_SAMPLED: "(b″) proxy, telemetry on, traces sampled 10 %",
        PROXY_WORKERS: "(f) proxy, telemetry on, WORKERS=2 (OTLP metrics)",
        PROXY_POOL: "(g) proxy, telemetry on, 3 upstreams (3 stand-ins)",
        PROXY_TENANTS: f"(h) proxy, telemetry on, {TENANTS} tenants with limits (keys rotated)",
        FLOOR: "(d) floor, httpx",
        FLOOR_AIOHTTP: "(d′) floor, httpx-aiohttp",
        LITELLM: f"(e) LiteLLM {litellm_version or ''}".strip(),
    }


def render(results: Results, options: Options, argv: Sequence[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"- date: {now}",
        f"- machine: {machine()}",
        f"- commit: {commit()}",
        f"- command: `python bench/run.py {' '.join(argv)}`",
        f"- method: {options.rounds} round(s) of {options.duration:g} s (after {options.warmup:g} s warm-up) per "
        "configuration, alternated; medians. Servers on core 0, load generator, stand-in and OTLP sink on core 1. "
        "Added latency is paired per round against (a). CPU ms/req: the server's process tree, user+sys. Peak RSS: "
        "VmHWM at the end of the scenario (each scenario starts fresh servers).",
        "",
        "## Targets",
        "",
        *targets_section(targets(results, SCENARIOS)),
        "## Scenarios",
        "",
    ]
    configs = list(labels(None))
    for scenario in SCENARIOS:
        lines += scenario_section(results, scenario, configs)
    lines += ["## Start-up and notes", ""]
    for config, values in results.ready_seconds.items():
        ready = statistics.median(values)
        lines.append(f"- {results.labels[config]}: ready in {ready:.2f} s (median of {len(values)} starts)")
    lines += _peer_notes(results)
    lines += [f"- skipped {results.labels[c]}: {reason}" for c, reason in results.skipped.items()]
    lines += [f"- {note}" for note in results.notes]
    return "\n".join(lines) + "\n"


def _peer_notes(results: Results) -> list[str]:
    notes = []
    for scenario in SCENARIOS:
        ours = results.median(scenario.key, PROXY_ON, lambda m: m.requests_per_s)
        theirs = results.median(scenario.key, LITELLM, lambda m: m.requests_per_s)
        if ours and theirs:
            notes.append(f"- {scenario.title}: proxy (telemetry on) ÷ LiteLLM req/s = {ours / theirs:.1f}×")
    return notes


# --- main -----------------------------------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s: a smoke check")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each measured window")
    parser.add_argument("--litellm", action="store_true", help="add LiteLLM (installed in bench/.venv-litellm)")
    parser.add_argument("--json-tokens", type=int, help="tokens per non-streamed reply (default: the stand-in's 100)")
    parser.add_argument("--floor-transport", choices=["httpx", "aiohttp", "both"], default="httpx")
    parser.add_argument("--proxy-env", action="append", default=[], metavar="NAME=VALUE", help="for every proxy run")
    parser.add_argument("--scenarios", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument("--no-variants", action="store_true", help="leave out (b″), (f) and (g)")
    parser.add_argument("--output", type=Path, help="default bench/results.md (bench/results-quick.md with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 1.0, 0.5
    floors = {"httpx": (FLOOR,), "aiohttp": (FLOOR_AIOHTTP,), "both": (FLOOR, FLOOR_AIOHTTP)}[args.floor_transport]
    default_output = BENCH / ("results-quick.md" if args.quick else "results.md")
    return Options(
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        litellm=args.litellm,
        json_tokens=args.json_tokens,
        floors=floors,
        proxy_env=dict(item.split("=", 1) for item in args.proxy_env),
        output=args.output or default_output,
        workdir=Path(tempfile.mkdtemp(prefix="mistral-ollama-bench-")),
        scenarios=tuple(name for name in args.scenarios.split(",") if name),
        variants=not args.no_variants,
    )


def prepare_litellm(options: Options, results: Results) -> str | None:
    if not options.litellm:
        return None
    reason = peer.ensure(options.workdir / "litellm-install.log")
    if reason is not None:
        results.skipped[LITELLM] = reason
        return None
    return peer.version()


def sink_stats(sink: Server) -> str:
    with contextlib.suppress(OSError, ValueError):
        import urllib.request

        with urllib.request.urlopen(sink.url + "/stats", timeout=5) as answer:
            stats = json.load(answer)
        received = ", ".join(
            f"{count} {kind} exports ({stats['bytes'][kind] / 1e6:.1f} MB)" for kind, count in stats["requests"].items()
        )
        return f"OTLP sink received {received or 'nothing'}"
    return "OTLP sink stats unavailable"


def publish(text: str, output: Path) -> None:
    """Print a results file's text and write it."""
    print("\n" + text)
    output.write_text(text)
    print(f"written to {output}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop every server on the way out
    os.sched_setaffinity(0, {LOAD_CORE})  # the helpers inherit it; the servers under test are moved to core 0
    results = Results(labels=labels(None))
    results.labels = labels(prepare_litellm(options, results))
    print(f"logs in {options.workdir}", flush=True)
    code = code_state()
    standin = start_helper("standin", "standin.py", options.workdir)
    sink = start_helper("sink", "sink.py", options.workdir)
    pool = [start_helper(f"standin-{n}", "standin.py", options.workdir) for n in (2, 3)] if options.variants else []
    try:
        for scenario in SCENARIOS:
            if options.scenarios and scenario.key not in options.scenarios:
                continue
            run_scenario(scenario, standin, sink, options, results, pool)
    finally:
        results.notes.append(sink_stats(sink))
        for helper in (sink, standin, *pool):
            helper.stop()
    if code_state() != code:
        results.notes.append("**the proxy's code (app/, otel/) changed during the run**: scenarios may differ")
    if results.unquiet:
        results.notes.append(f"{results.unquiet} run(s) started while a core was still busy after 20 s of waiting")
    publish(render(results, options, argv), options.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
