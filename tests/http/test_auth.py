"""Bearer keys: off unless configured; liveness, readiness and CORS preflights stay open; metrics have their own."""

from __future__ import annotations

import asyncio

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from app.http.auth import AuthMiddleware
from app.tenants import KeyFile
from otel.record import recording
from tests.http.asgi import answer, call

UNAUTHORIZED = b'{"error":"unauthorized: a valid API key is required (Authorization: Bearer \xe2\x80\xa6)"}'


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("passed")(scope, receive, send)


def _status(app: AuthMiddleware, path: str, key: str | None = None, method: str = "GET") -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return answer(asyncio.run(call(app, path, headers, method)))[0]


def test_the_api_wants_one_of_the_keys() -> None:
    app = AuthMiddleware(_app, keys=KeyFile(("k1", "k2")), metrics_token=None)
    assert [_status(app, "/api/chat", key) for key in (None, "k1", "k2", "k3", "k1 ")] == [401, 200, 200, 401, 200]
    status, headers, body = answer(asyncio.run(call(app, "/api/tags", {"Authorization": "Basic k1"})))
    assert (status, headers["www-authenticate"], body) == (401, "Bearer", UNAUTHORIZED)
    assert headers["content-type"] == "application/json; charset=utf-8"


def test_liveness_readiness_and_preflights_stay_open() -> None:
    app = AuthMiddleware(_app, keys=KeyFile(("k1",)), metrics_token=None)
    assert [_status(app, path) for path in ("/", "/health", "/ready")] == [200, 200, 200]
    assert _status(app, "/api/chat", method="OPTIONS") == 200


def test_metrics_have_their_own_token_or_none() -> None:
    guarded = AuthMiddleware(_app, keys=KeyFile(("k1",)), metrics_token="scrape")
    assert [_status(guarded, "/metrics", key) for key in (None, "k1", "scrape")] == [401, 401, 200]
    assert _status(guarded, "/api/metrics", "scrape") == 200
    open_metrics = AuthMiddleware(_app, keys=KeyFile(("k1",)), metrics_token=None)
    assert _status(open_metrics, "/metrics") == 200


def test_an_unauthorized_request_is_recorded_as_such() -> None:
    app = AuthMiddleware(_app, keys=KeyFile(("k1",)), metrics_token=None)
    scope_state: dict[str, object] = {}

    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        with recording(scope) as record:
            await app(scope, receive, send)
            scope_state["error_type"] = record.error_type

    asyncio.run(call(recorded, "/api/chat"))
    assert scope_state == {"error_type": "unauthorized"}
