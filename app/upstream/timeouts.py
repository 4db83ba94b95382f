"""How long mistral.rs may stay silent: before its first byte, between bytes, and for a whole request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.errors import UpstreamTimeout

__all__ = ["StreamTimeouts"]


@dataclass(frozen=True, slots=True)
class StreamTimeouts:
    """``first_byte`` covers queueing and prefill; ``idle`` any later gap (mistral.rs's keep-alives count)."""

    first_byte: float
    idle: float

    def wait(self, started: bool, deadline: float | None) -> tuple[float, UpstreamTimeout]:
        """How long to wait for the next bytes, and the error to raise if none come."""
        if started:
            limit, error = self.idle, UpstreamTimeout(f"mistral.rs stalled: nothing for {self.idle:g} s")
        else:
            limit, error = self.first_byte, UpstreamTimeout(f"mistral.rs sent nothing for {self.first_byte:g} s")
        if deadline is not None and deadline - time.monotonic() < limit:
            return max(deadline - time.monotonic(), 0.0), UpstreamTimeout("the request exceeded its time limit")
        return limit, error
