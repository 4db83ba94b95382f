"""``mistral-ollama-proxy serve``: settings from the environment, overridden by flags, served by Hypercorn.

With ``MISTRAL_URL`` the proxy drives a mistral.rs server; without it, it runs mistral.rs in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import resource
import signal
import socket
import sys
from importlib.metadata import version
from pathlib import Path

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.run import run as hypercorn_run

from app.http.server import install as install_closing_tcp_server
from app.main import create_app, make_upstream
from app.settings import Settings
from app.upstream import Upstream
from otel.setup import TelemetryConfigError, configure
from otel.telemetry import Telemetry

__all__ = ["serve"]

# Flags write the environment variable they stand for, so that worker processes see them too.
_FLAGS = {
    "mistral_url": "MISTRAL_URL",
    "model": "MODEL",
    "bind": "BIND_ADDRESS",
    "request_timeout": "REQUEST_TIMEOUT_SECS",
    "cors_allowed_origins": "CORS_ALLOWED_ORIGINS",
    "model_aliases": "MODEL_ALIASES",
    "workers": "WORKERS",
}


BACKLOG = 1024  # connections the kernel queues before the proxy accepts them: a burst of clients, not a refusal


def _listen(bind: str) -> socket.socket:
    """Bind before serving, so that "listening" is true when printed and a busy port is a clear error."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except BaseException:
        sock.close()
        raise
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _raise_open_files_limit() -> str:
    """Soft open-files limit up to the hard one, as Go servers (Ollama among them) do: a proxy holds two
    descriptors per streamed request, and the usual soft default of 1024 is a few hundred clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = int(Path("/proc/sys/fs/nr_open").read_text()) if Path("/proc/sys/fs/nr_open").exists() else soft
    if soft >= hard:
        return f"open files: {soft}"
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    except (ValueError, OSError) as exc:
        return f"open files: {soft} (could not raise it to {hard}: {exc})"
    return f"open files: {hard} (raised from {soft})"


def _config(sock: socket.socket) -> Config:
    install_closing_tcp_server()
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through our handler, once
    config.keep_alive_timeout = 75
    config.backlog = BACKLOG  # Hypercorn listens on the socket again, with its own default (100) unless told
    config.worker_class = "uvloop"
    return config


def _embedded(settings: Settings, telemetry: Telemetry) -> Upstream:
    """Load the in-process model (fetching the default if needed) before serving, so that a model that cannot
    load is a clear error and a non-zero exit rather than a failed lifespan."""
    from app.upstream.embedded import EmbeddedUpstream

    engine = make_upstream(settings, telemetry)
    assert isinstance(engine, EmbeddedUpstream)
    spec = engine.spec
    where = f"{spec.location}/{spec.filename}" if spec.filename else spec.location
    print(f"engine: mistral.rs in-process (mistralrs {version('mistralrs')}), {spec.kind} model", flush=True)
    print(f"model: {spec.name} from {where}, loaded in {engine.load_seconds:.2f} s", flush=True)
    return engine


async def _serve(settings: Settings, telemetry: Telemetry, upstream: Upstream | None, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings, telemetry=telemetry, upstream=upstream, owns_telemetry=True)
    freeze_start_up()
    draining: list[asyncio.Task[None]] = []

    async def shutdown_trigger() -> None:
        # Hypercorn stops accepting when this returns and waits for open connections; the drain ends the
        # streams still running when the grace period is over, each with a final error line.
        await stop.wait()
        draining.append(asyncio.create_task(app.state.drain.shutdown(settings.graceful_timeout)))

    config.graceful_timeout = settings.graceful_timeout + 5.0
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]


def freeze_start_up() -> None:
    """What start-up built (modules, the engine, the telemetry) lives as long as the process: out of the collector's
    sight, a full collection walks only what requests made. Without it one took 46 ms after a body of 13,000 tools,
    and every client waited (bench/abuse.py); with it, under 10 ms."""
    gc.collect()
    gc.freeze()


def _announce(settings: Settings, telemetry: Telemetry, open_files: str) -> None:
    print(f"mistral-ollama-proxy listening on http://{settings.bind} (Ollama API)", flush=True)
    for endpoint in settings.endpoints:
        named = f" ({endpoint.name})" if endpoint.name else ""
        print(f"upstream: mistral.rs at {endpoint.url}{named}", flush=True)
    if not telemetry.enabled:
        where = "off (OTEL_SDK_DISABLED)"
    elif telemetry.registry is not None:
        where = f"http://{settings.bind}/metrics"
    else:
        where = "pushed by OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)"
    print(f"metrics: {where}", flush=True)
    print(open_files, flush=True)


def _run(settings: Settings, telemetry: Telemetry, upstream: Upstream | None, sock: socket.socket) -> None:
    config = _config(sock)
    if settings.workers > 1:
        telemetry.shutdown()  # each worker builds its own
        config.workers = settings.workers
        config.application_path = "app.commands.worker:worker_app()"
        hypercorn_run(config)
        return
    import uvloop

    uvloop.run(_serve(settings, telemetry, upstream, config))


def _fail(message: str, code: int) -> int:
    print(f"mistral-ollama-proxy: {message}", file=sys.stderr)
    return code


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; the exit status is 2 for a bad configuration, 1 for an unusable one."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        # httpx logs every upstream call (health checks included) at INFO; the access log already has one line
        # per request.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    os.environ.update({env: str(value) for flag, env in _FLAGS.items() if (value := getattr(args, flag)) is not None})
    try:
        settings = Settings.from_env()
        # Workers build their own telemetry; this one checks the configuration (and serves a single process).
        telemetry = configure(version("mistral-ollama-proxy"), workers=settings.workers)
    except (ValueError, TelemetryConfigError) as exc:
        return _fail(f"invalid configuration: {exc}", 2)
    if not settings.remote and settings.workers > 1:
        return _fail("--workers needs MISTRAL_URL: each worker would load its own copy of the model", 2)
    open_files = _raise_open_files_limit()  # before the workers start: they inherit it
    try:
        sock = _listen(settings.bind)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot listen on {settings.bind}: {exc}", 1)
    upstream = None
    if not settings.remote:
        # The engine logs through Rust's tracing, to stdout: warnings only, unless RUST_LOG asks for more.
        os.environ.setdefault("RUST_LOG", "warn")
        if args.log_level != "debug":
            # A model that fails to load is one clear line, not a Rust backtrace (which --log-level debug keeps).
            os.environ["RUST_BACKTRACE"] = "0"
        from app.upstream.embedded import ModelUnavailable  # the engine's extension module is large

        try:
            upstream = _embedded(settings, telemetry)
        except ModelUnavailable as exc:
            sock.close()
            return _fail(str(exc), 1)
    _announce(settings, telemetry, open_files)
    _run(settings, telemetry, upstream, sock)
    return 0
