"""A steady load for the tests: ``count`` requests shared by ``threads`` clients, each on its own connection."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

__all__ = ["run_clients"]


def run_clients(
    url: str,
    count: int,
    threads: int,
    request: Callable[[httpx.Client], str | None],
    after: Callable[[int], None] = lambda done: None,
) -> list[str]:
    """Send ``count`` requests, each made by ``request`` (which returns what went wrong, or None); ``after`` is told
    how many are done after each. The failures, as text: ``request``'s, and the transport errors."""
    failures: list[str] = []
    todo = iter(range(count))
    lock = threading.Lock()
    done = 0

    def client() -> None:
        nonlocal done
        with httpx.Client(base_url=url, timeout=30) as http:
            while True:
                with lock:
                    if next(todo, None) is None:
                        return
                try:
                    if (failure := request(http)) is not None:
                        failures.append(failure)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                with lock:
                    done += 1
                    after(done)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return failures
