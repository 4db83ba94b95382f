"""Where the mistral.rs servers are: ``MISTRAL_URL`` (one URL, or several separated by commas) or an upstreams file.

The file, for names and weights (``MISTRAL_UPSTREAMS_FILE``)::

    upstreams:
      - url: http://gpu-a:8080
        name: gpu-a        # the ``upstream`` label; default: the URL
        weight: 2          # a share of the traffic relative to the others; default 1
      - url: http://gpu-b:8080
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import msgspec

__all__ = ["Endpoint", "endpoints_from_file", "endpoints_from_urls"]


class Endpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    name: str = ""
    weight: float = 1.0

    @property
    def label(self) -> str:
        """What telemetry calls it: its name, or its URL (bounded by the configuration either way)."""
        return self.name or self.url


class _File(msgspec.Struct, forbid_unknown_fields=True):
    upstreams: list[Endpoint]


def _url(value: str, source: str) -> str:
    """A URL httpx can call, refused at start rather than failing every request (``localhost:8080`` has no scheme)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{source} must be an http:// or https:// URL with a host, such as "
                         f"http://localhost:8080 (got {value!r})")  # fmt: skip
    return value.rstrip("/")


def _checked(endpoints: list[Endpoint], source: str) -> tuple[Endpoint, ...]:
    found = tuple(Endpoint(_url(endpoint.url, source), endpoint.name, endpoint.weight) for endpoint in endpoints)
    labels = [endpoint.label for endpoint in found]
    if duplicates := sorted({label for label in labels if labels.count(label) > 1}):
        raise ValueError(f"{source} names an upstream more than once: {', '.join(duplicates)}")
    if bad := [endpoint.label for endpoint in found if not endpoint.weight > 0]:
        raise ValueError(f"{source}: an upstream's weight must be above 0 ({', '.join(bad)})")
    return found


def endpoints_from_urls(value: str) -> tuple[Endpoint, ...]:
    """``MISTRAL_URL``: empty (the engine in-process), one URL, or several separated by commas."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    return _checked([Endpoint(url) for url in urls], "MISTRAL_URL")


def endpoints_from_file(path: str) -> tuple[Endpoint, ...]:
    source = f"MISTRAL_UPSTREAMS_FILE ({path})"
    try:
        found = msgspec.yaml.decode(Path(path).read_bytes(), type=_File).upstreams
    except OSError as exc:
        raise ValueError(f"{source} cannot be read: {exc.strerror}") from None
    except msgspec.ValidationError as exc:
        raise ValueError(f"{source} is not a valid upstreams file: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"{source} is not YAML: {exc}") from None
    if not found:
        raise ValueError(f"{source} lists no upstreams")
    return _checked(found, source)
