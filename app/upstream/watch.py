"""mistral.rs's health: checked once (readiness) or periodically (``mistral_upstream_up``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from otel.genai import untraced

__all__ = ["answers", "watch_upstream"]

_log = logging.getLogger(__name__)


async def watch_upstream(
    name: str, check: Callable[[], Awaitable[bool]], report: Callable[[bool], None], interval: float
) -> None:
    was_up: bool | None = None
    while True:
        with untraced():
            up = await answers(check, max(interval, 1.0))
        if up != was_up:
            _log.log(logging.INFO if up else logging.WARNING, "mistral.rs (%s) is %s", name, "up" if up else "down")
            was_up = up
        report(up)
        await asyncio.sleep(interval)


async def answers(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Whether ``check`` says up within ``timeout``: unreachable, timed out or answering garbage all mean down."""
    try:
        async with asyncio.timeout(timeout):
            return await check()
    except Exception:
        return False
