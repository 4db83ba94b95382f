"""The models mistral.rs serves, under Ollama's names: the catalog and the naming rules."""

from __future__ import annotations

from app.models.catalog import Entry, ModelCatalog
from app.models.names import digest, display_name, normalize, parse_aliases

__all__ = ["Entry", "ModelCatalog", "digest", "display_name", "normalize", "parse_aliases"]
