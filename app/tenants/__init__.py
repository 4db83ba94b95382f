"""Tenants: named API keys (API_KEYS_FILE), who sent a request, and the limits each may have."""

from __future__ import annotations

from app.tenants.directory import ANONYMOUS, Directory, Limits, Tenant, load_directory
from app.tenants.keyfile import KeyFile

__all__ = ["ANONYMOUS", "Directory", "KeyFile", "Limits", "Tenant", "load_directory"]
