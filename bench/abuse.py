"""What careless and hostile clients cost the proxy: hostile bodies, half-sent bodies, connection churn, and a
mixed soak.

    python bench/abuse.py                    # all phases, with a 5-min soak
    python bench/abuse.py --soak 60          # a shorter soak

The proxy (``mistral-ollama-proxy serve``, telemetry off) runs in front of the stand-in upstream. Hostile bodies:
about 40 KB of each shape that once cost the proxy (a 40,000-digit duration, thousands of images, tools, stop
sequences or messages, deep nesting, lone surrogates, ...), each sent 20 times; the report gives the time to its
4xx, the worst per KB, and the worst wait of another client polling ``/api/version`` meanwhile, against its worst
wait with no hostile traffic, measured in the same run. In the other phases, a well-behaved client sends one chat
every 50 ms and must get 200s; the report gives its errors and latency, the proxy's descriptors and RSS before and
after, and sockets left in CLOSE-WAIT. Writes bench/results-abuse.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procs  # noqa: E402
import run  # noqa: E402
from run import start_helper  # noqa: E402

BENCH = Path(__file__).resolve().parent
CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}], "stream": False}


@dataclass
class Observer:
    """A well-behaved client, errors and latencies recorded: by default one chat every 50 ms; as the poller of the
    hostile phase, ``GET /api/version`` back to back (its worst wait is the proxy's stall)."""

    url: str
    path: str = "/api/chat"
    body: dict[str, Any] | None = field(default_factory=lambda: CHAT)  # None: a GET
    pause: float = 0.05
    timeout: float = 10.0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout) as http:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    answer = http.get(self.path) if self.body is None else http.post(self.path, json=self.body)
                    if answer.status_code != 200:
                        self.errors.append(str(answer.status_code))
                except httpx.HTTPError as exc:
                    self.errors.append(type(exc).__name__)
                self.latencies.append(time.perf_counter() - started)
                if self.pause:
                    self.stop.wait(self.pause)

    def summary(self) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"{len(self.latencies)} requests, {len(self.errors)} errors, p99 {p99 * 1000:.1f} ms"


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _close_wait(port: int) -> int:
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(1 for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "08")


def half_sent(port: int, count: int, hold: float) -> str:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"model\": ")  # fmt: skip
        sockets.append(sock)
    time.sleep(hold)
    for sock in sockets:
        sock.close()
    return f"{count} connections held a half-sent body for {hold:g} s"


def churn(port: int, per_second: int, seconds: float, threads: int = 3) -> str:
    counts = [0] * threads
    started = time.perf_counter()

    def connect(n: int) -> None:
        while (elapsed := time.perf_counter() - started) < seconds:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n")
                sock.recv(4096)
            counts[n] += 1
            ahead = counts[n] * threads / per_second - elapsed
            if ahead > 0:
                time.sleep(ahead)

    workers = [threading.Thread(target=connect, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done = sum(counts)
    return f"{done} short connections in {seconds:g} s ({done / (time.perf_counter() - started):.0f}/s)"


def soak(url: str, seconds: float) -> str:
    """Streams, whole answers, bad input, hang-ups mid-stream, from 8 threads."""
    stop = time.monotonic() + seconds
    counts = [0]

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            i = 0
            while time.monotonic() < stop:
                i += 1
                kind = (i + n) % 4
                if kind == 0:
                    http.post("/api/chat", json={**CHAT, "stream": True})
                elif kind == 1:
                    http.post("/api/chat", json=CHAT)
                elif kind == 2:
                    http.post("/api/chat", content=b'{"model": [')
                else:
                    with http.stream("POST", "/api/chat", json={**CHAT, "stream": True}) as response:
                        next(response.iter_lines(), None)
                counts[0] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return f"{counts[0]} mixed requests in {seconds:g} s"


def _hostile_bodies(size: int = 40_000) -> dict[str, tuple[str, bytes]]:
    """Bodies of about ``size`` bytes: name -> (route, body). Each must get a 4xx."""
    chat = '{"model": "m", "messages": [{"role": "user", "content": "hi"}], '

    def many(item: str) -> str:
        return ",".join([item] * (size // (len(item) + 1)))

    bodies = {
        "keep_alive: one long run of digits": ("/api/chat", chat + '"keep_alive": "' + "9" * size + 's"}'),
        "images: thousands of tiny ones": ("/api/generate", '{"model": "m", "prompt": "?", "images": [' +
                                           many('"QQ=="') + "]}"),
        "tools: thousands of empty ones": ("/api/chat", chat + '"tools": [' + many("{}") + "]}"),
        "stop sequences: thousands of empty ones": ("/api/chat", chat + '"options": {"stop": [' + many('""') + "]}}"),
        "messages: thousands with a bad role": ("/api/chat", '{"model": "m", "messages": [' +
                                                many('{"role":"x"}') + "]}"),
        "messages: nested arrays, as deep as the body": ("/api/chat", '{"model": "m", "messages": ' +
                                                         "[" * (size // 2) + "]" * (size // 2) + "}"),
        "a string of lone surrogate escapes": ("/api/chat", chat + '"x": "' + "\\ud800" * (size // 6) + '"}'),
        "context: thousands of tokens, no model": ("/api/generate", '{"prompt": "hi", "context": [' + many("1") + "]}"),
        "prompt: escapes only, an unknown model": ("/api/generate", '{"model": "nope", "prompt": "' +
                                                   "\\u00e9" * (size // 6) + '"}'),
    }  # fmt: skip
    encoded = {name: (route, body.encode()) for name, (route, body) in bodies.items()}
    encoded["a string of invalid UTF-8"] = ("/api/chat", chat.encode() + b'"x": "' + b"\xff" * size + b'"}')
    return encoded


def _polled(url: str, action: Callable[[], None]) -> float:
    """Another client's worst wait while ``action`` runs."""
    poller = Observer(url, path="/api/version", body=None, pause=0.0, timeout=30.0)
    thread = threading.Thread(target=poller.run)
    thread.start()
    time.sleep(0.2)
    try:
        action()
    finally:
        poller.stop.set()
        thread.join()
    return max(poller.latencies)


def hostile(url: str, repeats: int = 20) -> list[str]:
    rows = ["| hostile body | route | size | status | time to the 4xx, median / worst | worst per KB | another "
            "client's worst wait: idle / during |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    with httpx.Client(base_url=url, timeout=60) as http:
        for name, (route, body) in _hostile_bodies().items():
            times: list[float] = []
            statuses: set[int] = set()

            def send(route: str = route, body: bytes = body, times: list[float] = times,
                     statuses: set[int] = statuses) -> None:  # fmt: skip
                for _ in range(repeats):
                    started = time.perf_counter()
                    statuses.add(http.post(route, content=body, headers={"content-type": "application/json"})
                                 .status_code)  # fmt: skip
                    times.append(time.perf_counter() - started)

            idle = _polled(url, lambda: time.sleep(0.5))  # the baseline, in the same run
            during = _polled(url, send)
            times.sort()
            median, worst = times[len(times) // 2], times[-1]
            rows.append(f"| {name} | `{route}` | {len(body) / 1000:.0f} KB | {', '.join(map(str, sorted(statuses)))} "
                        f"| {median * 1000:.1f} / {worst * 1000:.1f} ms | {worst * 1000 / (len(body) / 1000):.2f} ms "
                        f"| {idle * 1000:.1f} / {during * 1000:.1f} ms |")  # fmt: skip
    return rows


SIZES = (1_000, 10_000, 100_000, 1_000_000)


def linearity(url: str, repeats: int = 5) -> list[str]:
    """Each hostile shape at 1 KB to 1 MB: the best of ``repeats`` per KB at each size (linear parsing keeps it
    flat; a quadratic step multiplies it by the size), and the worst of them."""
    header = " | ".join(f"{size // 1000:,} KB" for size in SIZES)
    rows = [f"| hostile body | ms per KB at {header} | worst ms per KB | 1 MB ÷ 10 KB |",
            "|---" * (len(SIZES) + 3) + "|"]  # fmt: skip
    with httpx.Client(base_url=url, timeout=120) as http:
        per_kb: dict[str, list[float]] = {}
        for size in SIZES:
            for index, (route, body) in enumerate(_hostile_bodies(size).values()):
                best = min(_timed(http, route, body) for _ in range(repeats))
                per_kb.setdefault(str(index), []).append(best * 1000 / (len(body) / 1000))
        for index, name in enumerate(_hostile_bodies()):
            values = per_kb[str(index)]
            cells = " | ".join(f"{value:.3f}" for value in values)
            rows.append(f"| {name} | {cells} | {max(values):.3f} | {values[-1] / values[1]:.2f}× |")
    return rows


def _timed(http: httpx.Client, route: str, body: bytes) -> float:
    started = time.perf_counter()
    status = http.post(route, content=body, headers={"content-type": "application/json"}).status_code
    assert 400 <= status < 500, (route, status)
    return time.perf_counter() - started


def phase(name: str, proxy: procs.Server, port: int, action: Callable[[], str]) -> list[str]:
    observer = Observer(proxy.url)
    watcher = threading.Thread(target=observer.run)
    fds, rss = _fds(proxy.pid), _rss_mb(proxy.pid)
    watcher.start()
    what = action()
    observer.stop.set()
    watcher.join()
    time.sleep(1.0)  # what a closed connection leaves behind must be gone within a second
    return [f"| {name} | {what} | {observer.summary()} | {fds} → {_fds(proxy.pid)} | {rss:.0f} → "
            f"{_rss_mb(proxy.pid):.0f} | {_close_wait(port)} |"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half-sent", type=int, default=1000)
    parser.add_argument("--churn-rate", type=int, default=2000)
    parser.add_argument("--soak", type=float, default=300.0, help="seconds")
    parser.add_argument("--output", type=Path, default=BENCH / "results-abuse.md")
    args = parser.parse_args()
    header = [f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
              f"- machine: {run.machine()}", f"- commit: {run.commit()}", f"- soak: {args.soak:g} s"]  # fmt: skip
    with TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        standin = start_helper("standin", "standin.py", workdir)
        port = procs.free_port()
        env = {**os.environ, "MISTRAL_URL": standin.url, "BIND_ADDRESS": f"127.0.0.1:{port}",
               "OTEL_SDK_DISABLED": "true", "ACCESS_LOG": "false"}  # fmt: skip
        command = [sys.executable, "-m", "app.commands", "serve", "--log-level", "warning"]
        proxy = procs.start("proxy", command, url=f"http://127.0.0.1:{port}", ready_path="/",
                            log=workdir / "proxy.log", env=env)  # fmt: skip
        try:
            hostile_rows = hostile(proxy.url)
            linear_rows = linearity(proxy.url)
            rows = ["| phase | what | the well-behaved client | proxy descriptors | proxy RSS (MB) | CLOSE-WAIT 1 s "
                    "after |", "|---|---|---|---|---|---|"]  # fmt: skip
            rows += phase("half-sent bodies", proxy, port, lambda: half_sent(port, args.half_sent, 10.0))
            rows += phase("connection churn", proxy, port, lambda: churn(port, args.churn_rate, 10.0))
            rows += phase("mixed soak", proxy, port, lambda: soak(proxy.url, args.soak))
        finally:
            proxy.stop()
            standin.stop()
    report = "\n".join(
        [
            "# Abuse benchmark (bench/abuse.py)",
            "",
            *header,
            "",
            "## Hostile bodies",
            "",
            *hostile_rows,
            "",
            "## Time per KB, from 1 KB to 1 MB",
            "",
            "The best of five at each size; flat or falling means linear (the fixed cost of a request spreads).",
            "",
            *linear_rows,
            "",
            "## Careless clients",
            "",
            *rows,
            "",
        ]
    )
    args.output.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
