"""The emulator's front door: every request recorded before it is answered, and an `x-request-id` on every
response."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.emulator.replies import Recorded

if TYPE_CHECKING:
    from tests.emulator.server import Emulator


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _tag(send: Send, request_id: str) -> Send:
    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            message = {**message, "headers": headers}
        await send(message)

    return tagged


def _try_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _header_dict(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class _FrontDoor:
    """Records every request before it is answered and stamps `x-request-id` on every response."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self._app = app
        self._emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        body = await _read_body(receive)
        headers = _header_dict(scope)
        recorded = Recorded(scope["method"], scope["path"], headers, _try_json(body))
        self._emulator.requests.append(recorded)
        request_id = headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
        await self._app(scope, _replay(body, receive), _tag(send, request_id))
