"""mistral.rs in-process: the embedded upstream, the default model and the thread-to-event-loop bridge."""

from __future__ import annotations

from app.engine.models import DEFAULT_MODEL, ModelSpec, ModelUnavailable, default_cache_dir, resolve
from app.engine.upstream import EmbeddedUpstream

__all__ = ["DEFAULT_MODEL", "EmbeddedUpstream", "ModelSpec", "ModelUnavailable", "default_cache_dir", "resolve"]
