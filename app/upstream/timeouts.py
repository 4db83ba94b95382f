"""How long mistral.rs may stay silent: before its first byte, between bytes, and for a whole request."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from app.errors import UpstreamTimeout

__all__ = ["Silence", "StreamTimeouts"]


class Silence(enum.Enum):
    """Which limit a wait is bounded by (the error is built only when it is met)."""

    FIRST_BYTE = enum.auto()
    IDLE = enum.auto()
    DEADLINE = enum.auto()


@dataclass(frozen=True, slots=True)
class StreamTimeouts:
    """``first_byte`` covers queueing and prefill; ``idle`` any later gap (mistral.rs's keep-alives count)."""

    first_byte: float
    idle: float

    def wait(self, started: bool, deadline: float | None) -> tuple[float, Silence]:
        """How long to wait for the next bytes, and which limit that is."""
        limit, silence = (self.idle, Silence.IDLE) if started else (self.first_byte, Silence.FIRST_BYTE)
        if deadline is not None and (left := deadline - time.monotonic()) < limit:
            return max(left, 0.0), Silence.DEADLINE
        return limit, silence

    def error(self, silence: Silence) -> UpstreamTimeout:
        if silence is Silence.IDLE:
            return UpstreamTimeout(f"mistral.rs stalled: nothing for {self.idle:g} s")
        if silence is Silence.FIRST_BYTE:
            return UpstreamTimeout(f"mistral.rs sent nothing for {self.first_byte:g} s")
        return UpstreamTimeout("the request exceeded its time limit")
