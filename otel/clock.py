"""The one clock of a generation: the marks both telemetry's token times and Ollama's durations are read from."""

from __future__ import annotations

import dataclasses
import time

__all__ = ["Clock"]


@dataclasses.dataclass(slots=True)
class Clock:
    """The ``perf_counter_ns`` marks of one generation: telemetry's token times and Ollama's durations alike."""

    start: int = dataclasses.field(default_factory=time.perf_counter_ns)  # the request arrived
    load: int = 0  # how long a model load it triggered took (a duration)
    upstream: int = 0  # mistral.rs was called
    first: int = 0  # the first token arrived
    last: int = 0  # the latest token arrived

    def mark(self) -> None:
        """A token arrived now."""
        self.last = time.perf_counter_ns()
        self.first = self.first or self.last
