"""The ASGI entry point of each worker process when ``serve --workers N`` runs several."""

from __future__ import annotations

from importlib.metadata import version

from starlette.applications import Starlette

from app.commands.serve import freeze_start_up
from app.http.server import install as install_closing_tcp_server
from app.main import create_app
from app.settings import Settings
from otel.setup import configure

__all__ = ["worker_app"]


def worker_app() -> Starlette:
    """Each worker builds its own telemetry (its own ``service.instance.id``) and pushes it by OTLP."""
    install_closing_tcp_server()  # this worker's Hypercorn accepts its connections after the app is loaded
    settings = Settings.from_env()
    telemetry = configure(version("mistral-ollama-proxy"), workers=settings.workers)
    app = create_app(settings, telemetry=telemetry, owns_telemetry=True)
    freeze_start_up()
    return app
