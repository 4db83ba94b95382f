"""``mistral-ollama-proxy serve``: settings from the environment, overridden by flags, served by Hypercorn."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import socket
import sys
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from app.main import create_app
from app.names import parse_aliases
from app.settings import Settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mistral-ollama-proxy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Ollama API in front of mistral.rs")
    serve.add_argument("--mistral-url", help="mistral.rs server URL (env MISTRAL_URL)")
    serve.add_argument("--bind", help="host:port to listen on (env BIND_ADDRESS, default 0.0.0.0:11434)")
    serve.add_argument("--request-timeout", type=float, help="seconds (env REQUEST_TIMEOUT_SECS, default 300)")
    serve.add_argument("--cors-allowed-origins", help="comma-separated origins (env CORS_ALLOWED_ORIGINS)")
    serve.add_argument("--model-aliases", help="name=mistral-id,... (env MODEL_ALIASES)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides: dict[str, Any] = {
        "mistral_url": args.mistral_url,
        "bind": args.bind,
        "request_timeout": args.request_timeout,
        "cors_allowed_origins": tuple(o.strip() for o in args.cors_allowed_origins.split(",") if o.strip())
        if args.cors_allowed_origins is not None
        else None,
        "model_aliases": parse_aliases(args.model_aliases) if args.model_aliases is not None else None,
    }
    return dataclasses.replace(settings, **{key: value for key, value in overrides.items() if value is not None})


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


async def _serve(settings: Settings, sock: socket.socket) -> None:
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.keep_alive_timeout = 75
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"mistral-ollama-proxy listening on http://{settings.bind} (Ollama API)", flush=True)
    print(f"upstream: mistral.rs at {settings.mistral_url}", flush=True)
    await hypercorn_serve(create_app(settings), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def _run(settings: Settings, sock: socket.socket) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(settings, sock))
    else:
        uvloop.run(_serve(settings, sock))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
    except ValueError as exc:
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
    _run(settings, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
