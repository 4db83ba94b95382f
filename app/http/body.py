"""Request bodies: decoded and validated in one msgspec pass; every failure is a clear 4xx (app/bounds.py counts
what was decoded). A syntax error is told in Go's words, as Ollama tells it (app/http/go_json.py)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from functools import cache
from typing import Any, TypeVar, cast

import anyio
import msgspec
from starlette.requests import Request

from app.errors import InvalidRequest
from app.http.go_json import scan

__all__ = ["parse_body"]

T = TypeVar("T")
# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or a \uDC00-\uDFFF escape without one before it.
# Past this size the scan for Go's words runs in a worker thread, so that the event loop keeps answering.
_SCAN_INLINE = 64 * 1024
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


@cache
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


async def parse_body(request: Request, kind: type[T]) -> T:
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("missing request body")
    try:
        return _decoded(body, kind)
    except _Malformed as malformed:
        found = scan(body) if len(body) <= _SCAN_INLINE else await anyio.to_thread.run_sync(scan, body)
        if found.error is not None:
            raise InvalidRequest(found.error) from None
        if found.end < len(body.rstrip()):  # Go's Decoder reads the first value and leaves the rest unread
            try:
                return _decoded(body[: found.end], kind)
            except _Malformed:
                pass
        raise InvalidRequest(f"invalid JSON: {_explained(malformed.exc, body)}") from None


class _Malformed(Exception):
    def __init__(self, exc: msgspec.DecodeError) -> None:
        self.exc = exc


def _decoded(body: bytes, kind: type[T]) -> T:
    try:
        decoded: T = _decoder(cast(Hashable, kind)).decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise _Malformed(exc) from None
    except UnicodeDecodeError:
        raise InvalidRequest("invalid JSON: the request body is not valid UTF-8") from None
    except RecursionError:
        raise InvalidRequest("invalid JSON: nested too deeply") from None
    return decoded


def _explained(exc: msgspec.DecodeError, body: bytes) -> str:
    # msgspec reports an unpaired surrogate escape as truncated input, which sends people looking elsewhere.
    if (lone := _LONE_SURROGATE.search(body)) is not None:
        escape = lone.group().decode("ascii")
        return f"{escape} is half of a UTF-16 surrogate pair, with no other half: not a character"
    return str(exc)
