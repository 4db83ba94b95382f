"""The hand-over from a blocking engine iterator to the event loop, in bursts, with whatever ends it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from app.errors import ProxyError, UpstreamError
from app.upstream.embedded.bridge import EngineStream
from app.upstream.timeouts import StreamTimeouts
from tests.waiting import eventually

TIMEOUTS = StreamTimeouts(first_byte=5.0, idle=5.0)


def _engine(fail: bool) -> Iterator[bytes]:
    yield from (b"1", b"2", b"3")
    if fail:
        raise RuntimeError("CUDA out of memory")


async def _read(fail: bool) -> list[object]:
    exits: list[str] = []
    stream = EngineStream(_engine(fail), bytes, lambda exc: UpstreamError(f"engine: {exc}"),
                          lambda: exits.append("exit"), TIMEOUTS, None)  # fmt: skip
    await asyncio.to_thread(eventually, lambda: exits == ["exit"])  # every chunk is handed over before reading
    await asyncio.sleep(0)  # the loop runs the queued hand-overs
    seen: list[object] = []
    try:
        async for burst in stream:
            seen.append(burst)
    except ProxyError as exc:
        seen.append(exc.message)
    assert exits == ["exit"]
    return seen


@pytest.mark.parametrize(("fail", "ending"), [(False, []), (True, ["engine: CUDA out of memory"])])
def test_what_was_handed_over_comes_out_as_one_burst_then_the_end(fail: bool, ending: list[str]) -> None:
    assert asyncio.run(_read(fail)) == [[b"1", b"2", b"3"], *ending]


def _stalling(after: int, release: threading.Event) -> Iterator[bytes]:
    yield from (str(n).encode() for n in range(after))
    release.wait(10)
    yield b"late"


async def _read_stalled(after: int) -> tuple[list[object], bool]:
    release, exits = threading.Event(), []
    timeouts = StreamTimeouts(first_byte=0.3, idle=0.1)
    stream = EngineStream(_stalling(after, release), bytes, lambda exc: UpstreamError(str(exc)),
                          lambda: exits.append("exit"), timeouts, None)  # fmt: skip
    seen: list[object] = []
    try:
        async for burst in stream:
            seen.extend(burst)  # how the chunks fall into bursts depends on timing
    except ProxyError as exc:
        seen.append(exc.message)
    release.set()
    # told to stop, the producer drops the streamer at its next token instead of handing it over
    await asyncio.to_thread(eventually, lambda: exits == ["exit"])
    return seen, stream._queue.empty()


@pytest.mark.parametrize(
    ("after", "seen"),
    [(0, ["mistral.rs sent nothing for 0.3 s"]), (2, [b"0", b"1", "mistral.rs stalled: nothing for 0.1 s"])],
)
def test_an_engine_that_goes_quiet_times_out_and_its_producer_stops(after: int, seen: list[object]) -> None:
    got, nothing_handed_over = asyncio.run(_read_stalled(after))
    assert (got, nothing_handed_over) == (seen, True)
