from __future__ import annotations

import httpx
import pytest

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
)
from app.upstream.http.errors import map_upstream_errors, status_error

NOT_AVAILABLE = (
    b'{"message":"Requested model \'llama3\' is not available. Available models: a. '
    b"Use 'default' to use the default model.\"}"
)


@pytest.mark.parametrize(
    ("status", "body", "kind", "client_status", "message"),
    [
        (500, NOT_AVAILABLE, ModelNotFound, 404, "model 'llama3' not found"),
        (
            500,
            b'{"message":"Received a request incompatible for this model\'s category."}',
            InvalidRequest,
            400,
            "this model does not support this kind of request (mistral.rs: Received a request incompatible for this "
            "model's category.)",
        ),
        (
            500,
            b'{"message":"invalid operation: tried to use + operator on unsupported types string and sequence '
            b'(in chat_template:4)"}',
            InvalidRequest,
            400,
            "the model's chat template cannot render these messages (mistral.rs: invalid operation: tried to use + "
            "operator on unsupported types string and sequence (in chat_template:4))",
        ),
        (
            500,
            b'{"message":"model `x` is being reloaded"}',
            UpstreamBusy,
            503,
            "mistral.rs is busy: model `x` is being reloaded",
        ),
        (503, b"overloaded", UpstreamBusy, 503, "mistral.rs is busy: overloaded"),
        (429, b'{"message":"too many requests"}', UpstreamBusy, 429, "mistral.rs is busy: too many requests"),
        (400, b'{"message":"temperature must be positive"}', UpstreamStatusError, 400, "temperature must be positive"),
        (
            404,
            b'{"error":{"message":"no such adapter","type":"invalid_request_error"}}',
            UpstreamStatusError,
            404,
            "no such adapter",
        ),
        (400, b'{"error":"bad stop sequence"}', UpstreamStatusError, 400, "bad stop sequence"),
        (
            400,
            b"Failed to parse the request body as JSON",
            UpstreamStatusError,
            400,
            "Failed to parse the request body as JSON",
        ),
        (
            422,
            b'{"message":"Prompt sequence length is greater than 4096"}',
            UpstreamStatusError,
            400,
            "Prompt sequence length is greater than 4096",
        ),
        (
            413,
            b"request body too large",
            PayloadTooLarge,
            413,
            "mistral.rs rejected the request: request body too large",
        ),
        (
            415,
            b"Expected request with `Content-Type: application/json`",
            UpstreamProtocolError,
            502,
            "mistral.rs rejected the request (415): Expected request with `Content-Type: application/json`",
        ),
        (
            500,
            b'{"message":"No models are currently loaded."}',
            UpstreamStatusError,
            502,
            "mistral.rs error: No models are currently loaded.",
        ),
    ],
)
def test_status_error_mapping(
    status: int, body: bytes, kind: type[ProxyError], client_status: int, message: str
) -> None:
    error = status_error(status, body)
    assert type(error) is kind
    assert (error.status_code, error.message) == (client_status, message)


def test_an_upstream_retry_after_is_passed_on() -> None:
    assert status_error(429, b"slow down", {"retry-after": "7"}).headers == {"Retry-After": "7"}
    assert status_error(503, b"busy").headers == {"Retry-After": "1"}


def test_long_upstream_messages_are_truncated() -> None:
    error = status_error(500, b'{"message":"' + b"x" * 2000 + b'"}')
    assert len(error.message) == len("mistral.rs error: ") + 500


@pytest.mark.parametrize(
    ("raised", "kind", "error_type"),
    [
        # Nothing was sent: the one kind a pool of servers may try on another.
        (httpx.ConnectError("refused"), UpstreamUnreachable, "upstream_unavailable"),
        (httpx.ConnectTimeout("slow"), UpstreamUnreachable, "upstream_unavailable"),
        (httpx.ReadTimeout("slow"), UpstreamTimeout, "upstream_timeout"),
        (httpx.RemoteProtocolError("reset"), UpstreamUnavailable, "upstream_unavailable"),
        (httpx.ReadError("reset"), UpstreamUnavailable, "upstream_unavailable"),
        (httpx.UnsupportedProtocol("ftp"), UpstreamError, "upstream_error"),
    ],
)
def test_httpx_errors_map_to_the_error_tree(raised: Exception, kind: type[ProxyError], error_type: str) -> None:
    with pytest.raises(kind) as caught, map_upstream_errors():
        raise raised
    assert type(caught.value) is kind and caught.value.error_type == error_type
    assert caught.value.__cause__ is raised
