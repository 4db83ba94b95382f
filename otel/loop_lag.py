"""How late the event loop runs a timer: the time every other request waited for whatever held the loop.

One timer a quarter of a second apart; each wake-up records how much later than asked it came. A parse, a
regular expression or a synchronous call that holds the loop for 2 s shows as one sample near 2 s, however many
clients it stalled. The cost is four histogram records a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["INTERVAL", "watch_event_loop"]

INTERVAL = 0.25


async def watch_event_loop(record: Callable[[float], None], interval: float = INTERVAL) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        record(max(0.0, loop.time() - due))
