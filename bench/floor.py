"""The bare pass-through floor: the proxy's server stack with nothing on top.

Starlette on Hypercorn (uvloop), one ``httpx.AsyncClient`` to the upstream, no translation and no telemetry:
``POST /api/chat`` and ``POST /v1/chat/completions`` forward the request body to the upstream's
``/v1/chat/completions`` and relay the answer, a JSON body as it is, an SSE stream byte for byte as it comes.
Send it OpenAI bodies. ``GET /`` answers for readiness.

    python bench/floor.py --upstream http://127.0.0.1:8080 --port 11500 [--transport aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Literal

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

Transport = Literal["httpx", "aiohttp"]
# The proxy's own pool size (app/upstream/transport.py), so that only the work on top differs.
LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128)
_JSON = {"Content-Type": "application/json"}


def make_transport(kind: Transport) -> httpx.AsyncBaseTransport:
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=LIMITS, trust_env=False)
    return httpx.AsyncHTTPTransport(limits=LIMITS, trust_env=False)


def create_app(upstream: str, transport: Transport) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=upstream, transport=make_transport(transport), timeout=300) as client:
            app.state.client = client
            yield

    async def relay(request: Request) -> Response:
        client: httpx.AsyncClient = request.app.state.client
        outgoing = client.build_request("POST", "/v1/chat/completions", content=await request.body(), headers=_JSON)
        answer = await client.send(outgoing, stream=True)
        content_type = answer.headers.get("content-type", "application/json")
        if content_type.startswith("text/event-stream"):
            close = BackgroundTask(answer.aclose)
            return StreamingResponse(answer.aiter_raw(), answer.status_code, media_type=content_type, background=close)
        try:
            return Response(await answer.aread(), answer.status_code, media_type=content_type)
        finally:
            await answer.aclose()

    async def root(request: Request) -> Response:
        return PlainTextResponse("floor is running")

    routes = [
        Route("/", root),
        Route("/api/chat", relay, methods=["POST"]),
        Route("/v1/chat/completions", relay, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _serve(app: Starlette, bind: str) -> None:
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.keep_alive_timeout = 75
    config.worker_class = "uvloop"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="the stand-in, e.g. http://127.0.0.1:8080")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11500)
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], default="httpx")
    args = parser.parse_args()
    import uvloop

    uvloop.run(_serve(create_app(args.upstream, args.transport), f"{args.host}:{args.port}"))


if __name__ == "__main__":
    main()
