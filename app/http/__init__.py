"""The HTTP layer: the app factory, one middleware per file, error rendering, response framing, and the server."""

from __future__ import annotations

from app.http.app import create_app

__all__ = ["create_app"]
