"""Run an ASGI app under a real Hypercorn server on loopback, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework


@dataclass
class Server:
    url: str
    port: int
    loop: asyncio.AbstractEventLoop


@contextmanager
def serve_in_thread(app: ASGIFramework, *, graceful_timeout: float = 1.0, port: int = 0) -> Iterator[Server]:
    """Serve `app` on 127.0.0.1:`port` (0: an ephemeral port; a fixed one lets a test restart a server
    at the same address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) the socket from here
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    config.errorlog = None

    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def run() -> None:
        nonlocal stop
        stop = asyncio.Event()
        started.set()
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    started.wait(5)
    _wait_listening(port)
    try:
        yield Server(url=f"http://127.0.0.1:{port}", port=port, loop=loop)
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        # As asyncio.run does: what a server stopped without grace left running ends on its loop, not when
        # collected after the loop is closed (which raised "Event loop is closed" from a connection's handler).
        loop.run_until_complete(_cancel_all())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _cancel_all() -> None:
    leftover = asyncio.all_tasks() - {asyncio.current_task()}
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)


def _wait_listening(port: int) -> None:
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            threading.Event().wait(0.01)
    raise RuntimeError(f"server on port {port} did not start")
