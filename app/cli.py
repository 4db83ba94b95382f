"""``mistral-ollama-proxy serve``: settings from the environment, overridden by flags, served by Hypercorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from importlib.metadata import version

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.run import run as hypercorn_run

from app.main import create_app
from app.settings import Settings
from otel.setup import TelemetryConfigError, configure
from otel.telemetry import Telemetry

__all__ = ["main"]

# Flags write the environment variable they stand for, so that worker processes see them too.
_FLAGS = {
    "mistral_url": "MISTRAL_URL",
    "bind": "BIND_ADDRESS",
    "request_timeout": "REQUEST_TIMEOUT_SECS",
    "cors_allowed_origins": "CORS_ALLOWED_ORIGINS",
    "model_aliases": "MODEL_ALIASES",
    "workers": "WORKERS",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mistral-ollama-proxy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Ollama API in front of mistral.rs")
    serve.add_argument("--mistral-url", help="mistral.rs server URL (env MISTRAL_URL)")
    serve.add_argument("--bind", help="host:port to listen on (env BIND_ADDRESS, default 0.0.0.0:11434)")
    serve.add_argument("--request-timeout", help="seconds (env REQUEST_TIMEOUT_SECS, default 300)")
    serve.add_argument("--cors-allowed-origins", help="comma-separated origins (env CORS_ALLOWED_ORIGINS)")
    serve.add_argument("--model-aliases", help="name=mistral-id,... (env MODEL_ALIASES)")
    serve.add_argument("--workers", help="worker processes; more than 1 needs OTLP metrics (env WORKERS)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


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
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _config(sock: socket.socket) -> Config:
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.keep_alive_timeout = 75
    config.worker_class = "uvloop"
    return config


async def _serve(settings: Settings, telemetry: Telemetry, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings, telemetry=telemetry, owns_telemetry=True)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def _announce(settings: Settings, metrics: bool) -> None:
    print(f"mistral-ollama-proxy listening on http://{settings.bind} (Ollama API)", flush=True)
    print(f"upstream: mistral.rs at {settings.mistral_url}", flush=True)
    where = f"http://{settings.bind}/metrics" if metrics else "pushed by OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)"
    print(f"metrics: {where}", flush=True)


def _run(settings: Settings, telemetry: Telemetry, sock: socket.socket) -> None:
    config = _config(sock)
    if settings.workers > 1:
        telemetry.shutdown()  # each worker builds its own
        config.workers = settings.workers
        config.application_path = "app.asgi:worker_app()"
        hypercorn_run(config)
        return
    import uvloop

    uvloop.run(_serve(settings, telemetry, config))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.update({env: str(value) for flag, env in _FLAGS.items() if (value := getattr(args, flag)) is not None})
    try:
        settings = Settings.from_env()
        # Workers build their own telemetry; this one checks the configuration (and serves a single process).
        telemetry = configure(version("mistral-ollama-proxy"), workers=settings.workers)
    except (ValueError, TelemetryConfigError) as exc:
        print(f"mistral-ollama-proxy: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if not settings.mistral_url:
        print("mistral-ollama-proxy: set MISTRAL_URL (or --mistral-url) to a mistral.rs server", file=sys.stderr)
        return 2
    try:
        sock = _listen(settings.bind)
    except (OSError, ValueError) as exc:
        print(f"mistral-ollama-proxy: cannot listen on {settings.bind}: {exc}", file=sys.stderr)
        return 1
    _announce(settings, telemetry.registry is not None)
    _run(settings, telemetry, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
