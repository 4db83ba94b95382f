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
    # The first sample at once (a callback's wait for the next turn of the loop): the series exists from start-up,
    # as the monitoring check and a first scrape expect, not a quarter of a second later.
    delay = 0.0
    while True:
        due = loop.time() + delay
        await asyncio.sleep(delay)
        record(max(0.0, loop.time() - due))
        delay = interval
