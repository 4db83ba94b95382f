"""The ``mistral-ollama-proxy`` command: ``serve`` the Ollama API, or ``check`` that the monitoring stack sees it.

(The stack itself, without Docker, is ``scripts/stack.py``: it runs the programs the build script caches, which
are test and stack infrastructure, not part of the installed proxy.)
"""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mistral-ollama-proxy",
        description="The Ollama API in front of mistral.rs, observed with OpenTelemetry: serve it, or check that "
        "the monitoring stack sees it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('mistral-ollama-proxy')}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Ollama API in front of mistral.rs")
    serve.add_argument("--mistral-url", help="a mistral.rs server, or several separated by commas (env MISTRAL_URL); "
                       "unset: run mistral.rs in-process")  # fmt: skip
    serve.add_argument("--model", help="in-process model: .gguf file, model directory or HF id (env MODEL)")
    serve.add_argument("--bind", help="host:port (env BIND_ADDRESS; default 127.0.0.1:11434, loopback only, as Ollama)")
    serve.add_argument("--request-timeout", help="seconds (env REQUEST_TIMEOUT_SECS, default 300)")
    serve.add_argument("--cors-allowed-origins", help="comma-separated origins (env CORS_ALLOWED_ORIGINS)")
    serve.add_argument("--model-aliases", help="name=mistral-id,... (env MODEL_ALIASES)")
    serve.add_argument("--workers", help="worker processes; more than 1 needs OTLP metrics (env WORKERS)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    check = commands.add_parser("check", help="check that the monitoring stack sees the proxy (exit 1 if not)")
    check.add_argument("--proxy", default="http://localhost:11434", help="the proxy (default %(default)s)")
    check.add_argument("--prometheus", help="Prometheus, e.g. http://localhost:9090")
    check.add_argument("--grafana", help="Grafana, e.g. http://localhost:3000 (prints the dashboard link)")
    check.add_argument("--jaeger", help="Jaeger, e.g. http://localhost:16686 (checks the trace, prints its link)")
    check.add_argument("--collector", help="the Collector's health endpoint, e.g. http://localhost:13133")
    check.add_argument("--job", default="mistral", help="the proxy's Prometheus job (default %(default)s)")
    check.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for scrapes")
    check.add_argument("--api-key", default=os.environ.get("OLLAMA_API_KEY"),
                       help="a key of the proxy's API_KEYS (default $OLLAMA_API_KEY)")  # fmt: skip
    check.add_argument("--metrics-token", default=os.environ.get("METRICS_TOKEN"),
                       help="the proxy's METRICS_TOKEN, if it has one (default $METRICS_TOKEN)")  # fmt: skip
    return parser


def _check(args: argparse.Namespace) -> int:
    from app.commands.check import Check, run_check

    check = Check(args.proxy, args.prometheus, args.grafana, args.jaeger, args.job, args.timeout, args.collector,
                  api_key=args.api_key, metrics_token=args.metrics_token)  # fmt: skip
    return 0 if run_check(check) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args)
    from app.commands.serve import serve

    return serve(args)
