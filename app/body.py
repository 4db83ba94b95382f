"""Request bodies: decoded and validated in one msgspec pass; every failure is a 400 with a clear message."""

from __future__ import annotations

from collections.abc import Hashable
from functools import cache
from typing import Any, TypeVar, cast

import msgspec
from starlette.requests import Request

from app.errors import InvalidRequest

__all__ = ["parse_body"]

T = TypeVar("T")


@cache
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


async def parse_body(request: Request, kind: type[T]) -> T:
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("missing request body")
    try:
        decoded: T = _decoder(cast(Hashable, kind)).decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"invalid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidRequest("invalid JSON: the request body is not valid UTF-8") from None
    return decoded
