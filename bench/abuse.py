"""What careless and hostile clients cost the proxy: half-sent bodies, connection churn, and a mixed soak.

    python bench/abuse.py                    # 1,000 half-sent bodies, 2,000 connections/s for 10 s, 5-min soak
    python bench/abuse.py --soak 60          # a shorter soak

The proxy (``mistral-ollama-proxy serve``, telemetry off) runs in front of the stand-in upstream. Throughout, a
well-behaved client sends one chat every 50 ms and must get 200s; the report gives its errors and latency, the
proxy's descriptors and RSS before and after, and sockets left in CLOSE-WAIT. Writes bench/results-abuse.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procs  # noqa: E402
from run import start_helper  # noqa: E402

BENCH = Path(__file__).resolve().parent
CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}], "stream": False}


@dataclass
class Observer:
    """The well-behaved client: one chat every 50 ms, errors and latencies recorded."""

    url: str
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    status = http.post("/api/chat", json=CHAT).status_code
                    if status != 200:
                        self.errors.append(str(status))
                except httpx.HTTPError as exc:
                    self.errors.append(type(exc).__name__)
                self.latencies.append(time.perf_counter() - started)
                self.stop.wait(0.05)

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
            rows = ["| phase | what | the well-behaved client | proxy descriptors | proxy RSS (MB) | CLOSE-WAIT 1 s "
                    "after |", "|---|---|---|---|---|---|"]  # fmt: skip
            rows += phase("half-sent bodies", proxy, port, lambda: half_sent(port, args.half_sent, 10.0))
            rows += phase("connection churn", proxy, port, lambda: churn(port, args.churn_rate, 10.0))
            rows += phase("mixed soak", proxy, port, lambda: soak(proxy.url, args.soak))
        finally:
            proxy.stop()
            standin.stop()
    report = "\n".join(["# Abuse benchmark (bench/abuse.py)", "", *rows, ""])
    args.output.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
