"""The hand-over from a blocking engine iterator to the event loop, in bursts, with whatever ends it."""

from __future__ import annotations

import asyncio
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
