"""Who a key belongs to. ``API_KEYS_FILE`` is either one key per line (``#`` comments), or YAML naming tenants:

    tenants:
      - name: team-a
        keys: ["sha256:9f86d0…", "plain-key-too"]
        limits: {requests_per_minute: 600, tokens_per_minute: 200000, concurrent: 8, models: ["smollm2:135m"]}

Keys are kept as their SHA-256 digests, so a file may hold no secret, and a presented key is found by its digest.
The plain list and ``API_KEYS`` belong to one anonymous tenant, which is also what an unknown caller counts as.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

__all__ = ["ANONYMOUS", "Directory", "Limits", "Tenant", "load_directory"]

ANONYMOUS = "anonymous"
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class _LimitsFile(msgspec.Struct, forbid_unknown_fields=True):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None
    models: list[str] | None = None


class _TenantFile(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    keys: list[str]
    limits: _LimitsFile = msgspec.field(default_factory=_LimitsFile)


class _File(msgspec.Struct, forbid_unknown_fields=True):
    tenants: list[_TenantFile]


@dataclass(frozen=True)
class Limits:
    """Every limit is optional (None: none)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None
    models: frozenset[str] | None = None


@dataclass(frozen=True)
class Tenant:
    name: str
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Directory:
    """The tenants and their keys' digests; empty when the API is open."""

    by_digest: dict[bytes, Tenant] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return not self.by_digest

    @property
    def tenants(self) -> list[Tenant]:
        return list({tenant.name: tenant for tenant in self.by_digest.values()}.values())

    def identify(self, presented: Iterable[bytes]) -> Tenant | None:
        for credential in presented:
            if (tenant := self.by_digest.get(hashlib.sha256(credential).digest())) is not None:
                return tenant
        return None


def load_directory(inline: Iterable[str], path: str = "") -> Directory:
    """The keys of ``API_KEYS`` and of the file at ``path``; a ValueError that says what is wrong with the file."""
    anonymous = Tenant(ANONYMOUS)
    found = {_digest(key): anonymous for key in inline if key}
    if path:
        text = Path(path).read_text()
        for tenant, keys in _tenants(text, path) if _is_yaml(text) else [(anonymous, _lines(text))]:
            for key in keys:
                digest = _digest(key)
                if digest in found and found[digest].name != tenant.name:
                    raise ValueError(f"{path}: a key of tenant {tenant.name!r} is also one of {found[digest].name!r}")
                found[digest] = tenant
    return Directory(found)


def _is_yaml(text: str) -> bool:
    return re.search(r"(?m)^tenants\s*:", text) is not None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _tenants(text: str, path: str) -> list[tuple[Tenant, list[str]]]:
    try:
        parsed = msgspec.yaml.decode(text.encode(), type=_File)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    seen: set[str] = set()
    found = []
    for entry in parsed.tenants:
        if not _NAME.fullmatch(entry.name) or entry.name == ANONYMOUS:
            raise ValueError(f"{path}: tenant name {entry.name!r} must be 1-64 letters, digits, '_', '.' or '-', "
                             f"and not {ANONYMOUS!r}")  # fmt: skip
        if entry.name in seen:
            raise ValueError(f"{path}: tenant {entry.name!r} is named twice")
        if not entry.keys:
            raise ValueError(f"{path}: tenant {entry.name!r} has no keys")
        seen.add(entry.name)
        found.append((Tenant(entry.name, _limits(entry.limits, entry.name, path)), entry.keys))
    return found


def _limits(limits: _LimitsFile, name: str, path: str) -> Limits:
    for what in ("requests_per_minute", "tokens_per_minute", "concurrent"):
        value = getattr(limits, what)
        if value is not None and value < 1:
            raise ValueError(f"{path}: tenant {name!r}: {what} must be at least 1 (leave it out for no limit)")
    models = frozenset(limits.models) if limits.models is not None else None
    return Limits(limits.requests_per_minute, limits.tokens_per_minute, limits.concurrent, models)


def _digest(key: str) -> bytes:
    if key.startswith("sha256:"):
        if (match := _DIGEST.fullmatch(key)) is None:
            raise ValueError("a sha256: key must be 64 hex digits")
        return bytes.fromhex(match.group(1))
    return hashlib.sha256(key.encode()).digest()
