"""The periodic mistral.rs health check behind ``mistral_upstream_up``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from otel.genai import untraced

__all__ = ["watch_upstream"]

_log = logging.getLogger(__name__)


async def watch_upstream(
    name: str, check: Callable[[], Awaitable[bool]], report: Callable[[bool], None], interval: float
) -> None:
    was_up: bool | None = None
    while True:
        try:
            with untraced():
                up = await asyncio.wait_for(check(), timeout=max(interval, 1.0))
        except Exception:  # unreachable, timed out or answering garbage: all mean "down"
            up = False
        if up != was_up:
            _log.log(logging.INFO if up else logging.WARNING, "mistral.rs (%s) is %s", name, "up" if up else "down")
            was_up = up
        report(up)
        await asyncio.sleep(interval)
