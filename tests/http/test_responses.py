"""Response framing and error rendering: NDJSON and SSE bursts, the in-band error once a stream has begun."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.drain import Drain
from app.errors import ModelNotFound, Overloaded, UpstreamTimeout
from app.http.errors import render_error
from app.http.responses import json_response, ndjson_lines, sse_lines
from otel.record import recording


async def _bursts(items: list[list[object]], failure: Exception | None = None) -> AsyncIterator[list[object]]:
    for burst in items:
        yield burst
    if failure is not None:
        raise failure


async def _collect(lines: AsyncIterator[bytes]) -> list[bytes]:
    return [line async for line in lines]


def test_ndjson_writes_a_burst_per_write_and_an_error_line_after_a_failure() -> None:
    failures: list[BaseException] = []
    bursts = _bursts([[{"a": 1}, {"b": 2}], [{"c": 3}]], UpstreamTimeout("mistral.rs stalled: nothing for 30 s"))
    written = asyncio.run(_collect(ndjson_lines(bursts, failures.append, Drain())))
    assert written == [b'{"a":1}\n{"b":2}\n', b'{"c":3}\n', b'{"error":"mistral.rs stalled: nothing for 30 s"}\n']
    assert [type(failure) for failure in failures] == [UpstreamTimeout]


def test_sse_relays_payloads_then_an_openai_error_event_and_always_done() -> None:
    failures: list[BaseException] = []
    written = asyncio.run(_collect(sse_lines(_bursts([[b'{"x":1}', b'{"x":2}']]), failures.append, Drain())))
    assert written == [b'data: {"x":1}\n\ndata: {"x":2}\n\n', b"data: [DONE]\n\n"]
    failed = _bursts([[b'{"x":1}']], UpstreamTimeout("mistral.rs stalled"))
    written = asyncio.run(_collect(sse_lines(failed, failures.append, Drain())))
    assert written == [
        b'data: {"x":1}\n\n',
        b'data: {"error":{"message":"mistral.rs stalled","type":"server_error","param":null,"code":null}}\n\n',
        b"data: [DONE]\n\n",
    ]
    assert len(failures) == 1


def test_render_error_speaks_ollama_or_openai_by_path_and_records_the_type() -> None:
    scope = {"type": "http", "path": "/api/chat"}
    with recording(scope) as record:
        ollama = render_error(scope, ModelNotFound("qwen"))
    assert (ollama.status_code, ollama.body, record.error_type) == (404, b'{"error":"model \'qwen\' not found"}',
                                                                    "model_not_found")  # fmt: skip
    openai = render_error({"type": "http", "path": "/v1/chat/completions"}, Overloaded())
    assert openai.status_code == 503 and openai.headers["retry-after"] == "1"
    assert openai.body == (b'{"error":{"message":"server busy, please try again.  maximum pending requests exceeded",'
                           b'"type":"api_error","param":null,"code":null}}')  # fmt: skip


def test_json_is_compact_utf8() -> None:
    response = json_response({"model": "é", "n": [1, 2]}, 201)
    assert (response.status_code, response.body) == (201, '{"model":"é","n":[1,2]}'.encode())
    assert response.headers["content-type"] == "application/json; charset=utf-8"
