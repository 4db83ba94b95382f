"""Driving an ASGI app by hand: one request in, every message out (Starlette's own tests do the same)."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message


async def call(app: ASGIApp, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> list[Message]:
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "query_string": b"", "state": {},
        "headers": [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()],
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def answer(sent: list[Message]) -> tuple[int, dict[str, str], bytes]:
    start = sent[0]
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, b"".join(message.get("body", b"") for message in sent[1:])
