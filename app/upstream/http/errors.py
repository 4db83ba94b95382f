"""The one place where httpx exceptions and mistral.rs error statuses become the proxy's error tree."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx
import msgspec

from app.errors import (
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    ProxyError,
    UpstreamBusy,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
    truncate,
)

__all__ = ["map_upstream_errors", "status_error"]

# [^']* not .*?: each try stops at the next quote, so a body of many "Requested model '" stays linear.
_NOT_AVAILABLE = re.compile(r"Requested model '([^']*)' is not available")
_RELOADING = re.compile(r"is being reloaded")
# mistral.rs answers 500 for two mistakes of the client's (seen from the 0.8.1 server): a route the model's kind
# does not serve (embeddings from a chat model), and messages its chat template cannot render (images to a text
# model): Ollama's 400, with its own words and mistral.rs's.
_WRONG_CATEGORY = re.compile(r"incompatible for this model's category")
_TEMPLATE = re.compile(r"\(in chat_template")


class _JsonError(msgspec.Struct):
    message: str


class _OpenAIError(msgspec.Struct):
    error: _JsonError | str


def _lost(exc: httpx.HTTPError) -> bool:
    """The aiohttp transport reports a dropped connection as httpx's ConnectTimeout: look at the cause."""
    return type(exc.__cause__).__name__ in ("ServerDisconnectedError", "ClientPayloadError", "ClientOSError")


def _where(exc: httpx.HTTPError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # an error raised outside a request
        return "mistral.rs"
    return f"mistral.rs at {url.scheme}://{url.netloc.decode('ascii', 'replace')}"


@contextmanager
def map_upstream_errors() -> Iterator[None]:
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        if _lost(exc):
            raise UpstreamUnavailable(f"the connection to {_where(exc)} was lost") from exc
        raise UpstreamUnreachable(f"could not connect to {_where(exc)}") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout("mistral.rs did not answer in time") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise UpstreamUnavailable(f"the connection to {_where(exc)} was lost") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"mistral.rs request failed: {type(exc).__name__}") from exc


def _message(body: bytes) -> str:
    """mistral.rs's ``{"message": ...}``, an OpenAI ``{"error": {"message": ...}}``, or plain text."""
    try:
        return msgspec.json.decode(body, type=_JsonError).message
    except msgspec.MsgspecError:
        pass
    try:
        error = msgspec.json.decode(body, type=_OpenAIError).error
        return error if isinstance(error, str) else error.message
    except msgspec.MsgspecError:
        return body.decode("utf-8", "replace")


def status_error(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> ProxyError:
    """Map a mistral.rs error answer to what the client sees: the client's own mistakes as the same 4xx with
    mistral.rs's message, overload as 503/429 with its ``Retry-After``, anything else as 502."""
    message = truncate(_message(body))
    if status == 500 and (match := _NOT_AVAILABLE.search(message)):
        return ModelNotFound(match.group(1))
    if status in (429, 503) or _RELOADING.search(message):
        busy = UpstreamBusy(f"mistral.rs is busy: {message}")
        busy.status_code = status if status in (429, 503) else 503
        busy.headers = {"Retry-After": (headers or {}).get("retry-after", "1")}
        return busy
    if status == 500 and _WRONG_CATEGORY.search(message):
        return InvalidRequest(f"this model does not support this kind of request (mistral.rs: {message})")
    if status == 500 and _TEMPLATE.search(message):
        return InvalidRequest(f"the model's chat template cannot render these messages (mistral.rs: {message})")
    if status == 413:
        return PayloadTooLarge(f"mistral.rs rejected the request: {message}")
    if status in (400, 404, 422):  # 422 (a prompt longer than the context) is Ollama's 400 for bad input
        return UpstreamStatusError(message, status_code=400 if status == 422 else status, upstream_status=status)
    if status in (405, 415):  # a request the proxy built wrong: its fault, not the client's
        return UpstreamProtocolError(f"mistral.rs rejected the request ({status}): {message}")
    return UpstreamStatusError(f"mistral.rs error: {message}", status_code=502, upstream_status=status)
