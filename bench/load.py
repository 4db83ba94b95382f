"""A closed-loop HTTP load generator: aiohttp on its own uvloop event loop, pinned to one core.

Each of ``--concurrency`` workers sends one request after the other for ``--warmup`` + ``--duration`` seconds;
only requests that finish inside the measured window count. Streams are counted as they arrive: SSE ``data:``
events (``[DONE]`` excluded) for ``text/event-stream``, lines for NDJSON. A response is an error when its status
is not 200, the connection fails, or a stream does not end properly (no ``[DONE]``, or a final NDJSON line that
is not ``"done":true``). Prints one JSON object:

    python bench/load.py --url http://127.0.0.1:11434/api/chat --body '{"model": "m", "stream": true}' \\
        --concurrency 16 --duration 5 --watch-pid 1234
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from procs import core_seconds, tree_cpu_seconds

_MAX_ERROR_SAMPLES = 5


@dataclass
class Sample:
    finished: float
    latency: float
    chunks: int
    error: str | None


@dataclass
class Result:
    requests: int
    errors: int
    error_samples: list[str]
    seconds: float
    requests_per_s: float
    chunks: int
    chunks_per_s: float
    chunks_per_request: float
    p50_ms: float
    p99_ms: float
    loadgen_cpu: float  # share of one core the load generator used
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per watched pid, process tree
    core_busy: dict[str, float] = field(default_factory=dict)  # per core, share busy (any process)
    core_steal: dict[str, float] = field(default_factory=dict)  # per core, share stolen by the hypervisor


@dataclass(frozen=True)
class _Snapshot:
    pids: dict[int, float]
    own: float
    cores: dict[str, tuple[float, float]]

    def since(self, before: _Snapshot, seconds: float) -> dict[str, Any]:
        return {
            "loadgen_cpu": (self.own - before.own) / seconds,
            "cpu_seconds": {str(pid): self.pids[pid] - before.pids[pid] for pid in self.pids},
            "core_busy": {core: (v[0] - before.cores[core][0]) / seconds for core, v in self.cores.items()},
            "core_steal": {core: (v[1] - before.cores[core][1]) / seconds for core, v in self.cores.items()},
        }


class _Counter:
    """Counts events in a byte stream without splitting it into lines, and keeps its tail."""

    def __init__(self, sse: bool) -> None:
        self._separator = b"\n\n" if sse else b"\n"
        self._sse = sse
        self._previous = b""
        self.count = 0
        self.tail = b""

    def feed(self, data: bytes) -> None:
        if self._sse and self._previous.endswith(b"\n") and data.startswith(b"\n"):
            self.count += 1
        self.count += data.count(self._separator)
        self._previous = data
        self.tail = (self.tail + data)[-512:]

    def finish(self) -> tuple[int, str | None]:
        if self._sse:
            if not self.tail.rstrip().endswith(b"data: [DONE]"):
                return self.count, f"stream ended without [DONE]: {self.tail[-200:]!r}"
            return self.count - 1, None
        last = self.tail.rstrip(b"\n").rpartition(b"\n")[2]
        if b'"done":true' not in last.replace(b" ", b""):
            return self.count, f"stream ended without a done line: {last[-300:]!r}"
        return self.count, None


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, key: str | None) -> tuple[int, str | None]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with session.post(url, data=body, headers=headers) as response:
        if response.status != 200:
            text = await response.text(errors="replace")
            return 0, f"HTTP {response.status}: {text[:300]}"
        content_type = response.headers.get("Content-Type", "")
        if "event-stream" not in content_type and "ndjson" not in content_type:
            await response.read()
            return 1, None
        counter = _Counter(sse="event-stream" in content_type)
        async for data in response.content.iter_any():
            counter.feed(data)
        return counter.finish()


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    stop: float,
    samples: list[Sample],
    keys: Iterator[str | None],
) -> None:
    while (started := time.perf_counter()) < stop:
        try:
            chunks, error = await _one(session, url, body, next(keys))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            chunks, error = 0, f"{type(exc).__name__}: {exc}"
        finished = time.perf_counter()
        samples.append(Sample(finished, finished - started, chunks, error))


async def _cpu_at(when: float, pids: list[int]) -> _Snapshot:
    await asyncio.sleep(max(0.0, when - time.perf_counter()))
    return _Snapshot({pid: tree_cpu_seconds(pid) for pid in pids}, time.process_time(), core_seconds())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(
    url: str, body: bytes, concurrency: int, duration: float, warmup: float, pids: list[int], keys: Sequence[str] = ()
) -> Result:
    """``keys``: API keys to send, one after the other, request by request (none: no Authorization)."""
    rotation: Iterator[str | None] = itertools.cycle(keys) if keys else itertools.repeat(None)
    start = time.perf_counter()
    window = (start + warmup, start + warmup + duration)
    samples: list[Sample] = []
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=["User-Agent"]) as session:
        before = asyncio.create_task(_cpu_at(window[0], pids))
        after = asyncio.create_task(_cpu_at(window[1], pids))
        workers = [_worker(session, url, body, window[1], samples, rotation) for _ in range(concurrency)]
        await asyncio.gather(*workers)
        cpu = (await after).since(await before, duration)
    counted = [s for s in samples if window[0] <= s.finished <= window[1]]
    return _result(counted, duration, cpu)


def _result(samples: list[Sample], duration: float, cpu: dict[str, Any]) -> Result:
    errors = [s.error for s in samples if s.error is not None]
    good = [s for s in samples if s.error is None]
    chunks = sum(s.chunks for s in good)
    latencies = [s.latency * 1000 for s in good]
    return Result(
        requests=len(good),
        errors=len(errors),
        error_samples=list(dict.fromkeys(errors))[:_MAX_ERROR_SAMPLES],
        seconds=duration,
        requests_per_s=len(good) / duration,
        chunks=chunks,
        chunks_per_s=chunks / duration,
        chunks_per_request=chunks / len(good) if good else 0.0,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
        **cpu,
    )


def _run(coroutine: Coroutine[Any, Any, Result]) -> Result:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the project
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="the JSON body to POST")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--cpu", type=int, default=1, help="the core to run on (-1: do not pin)")
    parser.add_argument("--watch-pid", type=int, action="append", default=[], help="report this process's CPU time")
    parser.add_argument("--keys-file", help="API keys, one per line, sent in turn (Authorization: Bearer)")
    args = parser.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    body = json.dumps(json.loads(args.body)).encode()
    keys = Path(args.keys_file).read_text().split() if args.keys_file else []
    coroutine = measure(args.url, body, args.concurrency, args.duration, args.warmup, args.watch_pid, keys)
    json.dump(asdict(_run(coroutine)), sys.stdout)
    print()


if __name__ == "__main__":
    main()
