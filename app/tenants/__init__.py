"""Tenants: named API keys (API_KEYS_FILE), who sent a request, and the limits each may have."""

from __future__ import annotations

from app.tenants.directory import ANONYMOUS, Directory, Limits, Tenant, load_directory
from app.tenants.keyfile import KeyFile
from app.tenants.quotas import Lease, Quotas, current_tenant, estimate_tokens, may_use, reset_serving, serving
from app.tenants.store import SharedStore, StoreUnavailable

__all__ = [
    "ANONYMOUS",
    "Directory",
    "KeyFile",
    "Lease",
    "Limits",
    "Quotas",
    "SharedStore",
    "StoreUnavailable",
    "Tenant",
    "current_tenant",
    "estimate_tokens",
    "load_directory",
    "may_use",
    "reset_serving",
    "serving",
]
