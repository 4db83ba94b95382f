"""Waiting for something another thread or process does, with a deadline instead of a sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(condition: Callable[[], T], within: float = 5.0, every: float = 0.005) -> T:
    """The first truthy value of `condition()`; fails the test if none comes within `within` seconds."""
    deadline = time.monotonic() + within
    while not (value := condition()):
        assert time.monotonic() < deadline, f"condition not met within {within} s"
        time.sleep(every)
    return value
