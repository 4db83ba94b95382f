"""Configuration: one frozen object, read once from the environment (and ``.env``), overridable by CLI flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.config import Config

from app.names import parse_aliases

__all__ = ["DEFAULT_BIND", "DEFAULT_REQUEST_TIMEOUT", "Settings"]

DEFAULT_BIND = "0.0.0.0:11434"
DEFAULT_REQUEST_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MODEL_CACHE_TTL = 10.0
DEFAULT_HEALTH_INTERVAL = 15.0
# The Ollama API version we implement; clients such as Open WebUI gate features on it.
OLLAMA_API_VERSION = "0.33.0"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    mistral_url: str | None = None
    bind: str = DEFAULT_BIND
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    cors_allowed_origins: tuple[str, ...] = ()
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    model_cache_ttl: float = DEFAULT_MODEL_CACHE_TTL
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    workers: int = 1
    model: str | None = None  # the embedded engine's model, when there is no MISTRAL_URL
    model_cache_dir: str | None = None
    engine_concurrency: int = 0  # 0: 1 for GGUF models (a mistralrs 0.9.5 CPU bug), 8 otherwise
    engine_max_queue: int = 64
    ollama_version: str = OLLAMA_API_VERSION

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
        env_path = Path(env_file) if env_file and Path(env_file).is_file() else None
        config = Config(env_path, environ=os.environ if environ is None else environ)
        return cls(
            mistral_url=config("MISTRAL_URL", default=None) or None,
            bind=config("BIND_ADDRESS", default=DEFAULT_BIND),
            request_timeout=config("REQUEST_TIMEOUT_SECS", cast=float, default=DEFAULT_REQUEST_TIMEOUT),
            connect_timeout=config("CONNECT_TIMEOUT_SECS", cast=float, default=DEFAULT_CONNECT_TIMEOUT),
            cors_allowed_origins=config("CORS_ALLOWED_ORIGINS", cast=_csv, default=""),
            model_aliases=config("MODEL_ALIASES", cast=parse_aliases, default=""),
            model_cache_ttl=config("MODEL_CACHE_TTL_SECS", cast=float, default=DEFAULT_MODEL_CACHE_TTL),
            health_interval=config("HEALTH_CHECK_INTERVAL_SECS", cast=float, default=DEFAULT_HEALTH_INTERVAL),
            workers=config("WORKERS", cast=int, default=1),
            model=config("MODEL", default=None) or None,
            model_cache_dir=config("MODEL_CACHE_DIR", default=None) or None,
            engine_concurrency=config("ENGINE_CONCURRENCY", cast=int, default=0),
            engine_max_queue=config("ENGINE_MAX_QUEUE", cast=int, default=64),
        )
