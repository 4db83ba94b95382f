"""A mistral.rs server over HTTP: the client, its SSE decoder, error mapping and transport."""

from __future__ import annotations

from app.upstream.http.client import HTTPUpstream

__all__ = ["HTTPUpstream"]
