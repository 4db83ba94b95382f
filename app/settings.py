"""Configuration: one frozen object, read once from the environment (and ``.env``), overridable by CLI flags."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.config import Config

from app.bounds import Bounds
from app.models.names import parse_aliases
from app.upstream.endpoints import Endpoint, endpoints_from_file, endpoints_from_urls
from app.upstream.http.transport import TransportKind
from app.upstream.timeouts import StreamTimeouts

__all__ = ["DEFAULT_BIND", "DEFAULT_REQUEST_TIMEOUT", "Settings"]

# Loopback, as Ollama: anyone who can reach the port can run and unload models. Containers set 0.0.0.0 themselves.
DEFAULT_BIND = "127.0.0.1:11434"
DEFAULT_REQUEST_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MODEL_CACHE_TTL = 10.0
DEFAULT_HEALTH_INTERVAL = 15.0
DEFAULT_FIRST_BYTE_TIMEOUT = 120.0
# mistral.rs sends a keep-alive comment every 10 s while it works: 30 s of silence means it is stuck.
DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024  # mistral.rs's own limit
DEFAULT_BODY_READ_TIMEOUT = 60.0  # between two reads of a request body, as nginx's client_body_timeout
# The Ollama API version we implement; clients such as Open WebUI gate features on it.
OLLAMA_API_VERSION = "0.33.0"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _transport(value: str) -> TransportKind:
    if value not in ("httpx", "aiohttp"):
        raise ValueError(f"UPSTREAM_TRANSPORT must be httpx or aiohttp, not {value!r}")
    return value  # type: ignore[return-value]


def _upstreams(urls: str, path: str) -> tuple[str | None, tuple[Endpoint, ...]]:
    """``MISTRAL_URL`` (normalised) or the upstreams file's endpoints; never both."""
    if urls and path:
        raise ValueError("set MISTRAL_URL or MISTRAL_UPSTREAMS_FILE, not both")
    if path:
        return None, endpoints_from_file(path)
    return ",".join(endpoint.url for endpoint in endpoints_from_urls(urls)) or None, ()


def _logprob_base(value: str) -> float:
    if value.strip().lower() in ("", "e"):
        return math.e
    if value.strip() == "10":
        return 10.0
    raise ValueError(f"MISTRAL_LOGPROB_BASE must be e or 10, not {value!r}")


@dataclass(frozen=True)
class Settings:
    mistral_url: str | None = None  # one URL, or several separated by commas
    upstreams: tuple[Endpoint, ...] = ()  # from MISTRAL_UPSTREAMS_FILE, instead of mistral_url
    bind: str = DEFAULT_BIND
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_concurrent: int = 256  # generations in flight at once; 0 = no limit
    max_queue: int = 512  # generations allowed to wait for a slot; beyond, 503
    queue_timeout: float = 30.0  # longest wait for a slot, then 503
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_read_timeout: float = DEFAULT_BODY_READ_TIMEOUT
    bounds: Bounds = field(default_factory=Bounds)  # how much one request may carry
    api_keys: tuple[str, ...] = ()  # API_KEYS, comma-separated
    api_keys_file: str = ""  # API_KEYS_FILE: a key per line, or tenants in YAML (app/tenants/directory.py)
    quota_store_url: str | None = None  # QUOTA_STORE_URL: a Redis or Valkey server the replicas share limits in
    metrics_token: str | None = None
    graceful_timeout: float = 30.0
    cors_allowed_origins: tuple[str, ...] = ()
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    model_cache_ttl: float = DEFAULT_MODEL_CACHE_TTL
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    upstream_transport: TransportKind = "aiohttp"
    # The logarithm base of the server's logprobs: mistral.rs before 0.9.1 reports base 10 (its #2327).
    mistral_logprob_base: float = math.e
    workers: int = 1
    model: str | None = None  # the embedded engine's model, when there is no MISTRAL_URL
    model_cache_dir: str | None = None
    engine_concurrency: int = 0  # 0: the engine's default, 8
    engine_max_queue: int = 64
    max_output_tokens: int = 0  # the most one generation may write (0: no cap, as Ollama)
    ollama_version: str = OLLAMA_API_VERSION
    access_log: bool = True  # one structured line per request (logger mistral_ollama_proxy.access)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The mistral.rs servers to use; none: the engine in-process."""
        return self.upstreams or (endpoints_from_urls(self.mistral_url) if self.mistral_url else ())

    @property
    def remote(self) -> bool:
        """mistral.rs is reached over HTTP (else it runs in-process)."""
        return bool(self.mistral_url or self.upstreams)

    @property
    def stream_timeouts(self) -> StreamTimeouts:
        return StreamTimeouts(first_byte=self.first_byte_timeout, idle=self.idle_timeout)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
        env_path = Path(env_file) if env_file and Path(env_file).is_file() else None
        config = Config(env_path, environ=os.environ if environ is None else environ)
        urls, upstreams_file = config("MISTRAL_URL", default=""), config("MISTRAL_UPSTREAMS_FILE", default="")
        mistral_url, upstreams = _upstreams(urls, upstreams_file)
        return cls(
            mistral_url=mistral_url,
            upstreams=upstreams,
            bind=config("BIND_ADDRESS", default="") or DEFAULT_BIND,
            request_timeout=config("REQUEST_TIMEOUT_SECS", cast=float, default=DEFAULT_REQUEST_TIMEOUT),
            connect_timeout=config("CONNECT_TIMEOUT_SECS", cast=float, default=DEFAULT_CONNECT_TIMEOUT),
            first_byte_timeout=config("FIRST_BYTE_TIMEOUT_SECS", cast=float, default=DEFAULT_FIRST_BYTE_TIMEOUT),
            idle_timeout=config("IDLE_TIMEOUT_SECS", cast=float, default=DEFAULT_IDLE_TIMEOUT),
            max_concurrent=config("MAX_CONCURRENT_REQUESTS", cast=int, default=256),
            max_queue=config("MAX_QUEUED_REQUESTS", cast=int, default=512),
            queue_timeout=config("QUEUE_TIMEOUT_SECS", cast=float, default=30.0),
            max_body_bytes=config("MAX_BODY_BYTES", cast=int, default=DEFAULT_MAX_BODY_BYTES),
            body_read_timeout=config("BODY_READ_TIMEOUT_SECS", cast=float, default=DEFAULT_BODY_READ_TIMEOUT),
            bounds=_bounds(config),
            api_keys=config("API_KEYS", cast=_csv, default=""),
            api_keys_file=config("API_KEYS_FILE", default=""),
            quota_store_url=config("QUOTA_STORE_URL", default="") or None,
            metrics_token=config("METRICS_TOKEN", default=None) or None,
            graceful_timeout=config("GRACEFUL_TIMEOUT_SECS", cast=float, default=30.0),
            cors_allowed_origins=config("CORS_ALLOWED_ORIGINS", cast=_csv, default=""),
            model_aliases=config("MODEL_ALIASES", cast=parse_aliases, default=""),
            model_cache_ttl=config("MODEL_CACHE_TTL_SECS", cast=float, default=DEFAULT_MODEL_CACHE_TTL),
            health_interval=config("HEALTH_CHECK_INTERVAL_SECS", cast=float, default=DEFAULT_HEALTH_INTERVAL),
            upstream_transport=_transport(config("UPSTREAM_TRANSPORT", default="aiohttp")),
            mistral_logprob_base=_logprob_base(config("MISTRAL_LOGPROB_BASE", default="e")),
            workers=config("WORKERS", cast=int, default=1),
            model=config("MODEL", default=None) or None,
            model_cache_dir=config("MODEL_CACHE_DIR", default=None) or None,
            engine_concurrency=config("ENGINE_CONCURRENCY", cast=int, default=0),
            engine_max_queue=config("ENGINE_MAX_QUEUE", cast=int, default=64),
            max_output_tokens=config("MAX_OUTPUT_TOKENS", cast=int, default=0),
            access_log=config("ACCESS_LOG", cast=bool, default=True),
        )


# Each bound's variable; unset, the default in app/bounds.py.
_BOUNDS = {
    "messages": "MAX_MESSAGES", "images": "MAX_IMAGES", "image_bytes": "MAX_IMAGE_BYTES",
    "image_total_bytes": "MAX_IMAGE_TOTAL_BYTES", "tools": "MAX_TOOLS", "stop": "MAX_STOP_SEQUENCES",
    "content_parts": "MAX_CONTENT_PARTS", "inputs": "MAX_EMBED_INPUTS", "body_items": "MAX_BODY_ITEMS",
}  # fmt: skip


def _bounds(config: Config) -> Bounds:
    defaults = Bounds()
    return Bounds(**{name: config(variable, cast=int, default=getattr(defaults, name))
                     for name, variable in _BOUNDS.items()})  # fmt: skip
