"""mistral.rs in-process: the engine behind the upstream contract, the default model and the thread bridge."""

from __future__ import annotations

from app.upstream.embedded.engine import EmbeddedUpstream
from app.upstream.embedded.spec import DEFAULT_MODEL, ModelSpec, ModelUnavailable, default_cache_dir, resolve

__all__ = ["DEFAULT_MODEL", "EmbeddedUpstream", "ModelSpec", "ModelUnavailable", "default_cache_dir", "resolve"]
