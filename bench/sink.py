"""A do-nothing OTLP/HTTP receiver: 200 (an empty protobuf answer) to ``/v1/traces``, ``/v1/metrics`` and
``/v1/logs``; ``GET /stats`` reports what it received, so the benchmark can show that telemetry was exported.

    python bench/sink.py --port 4318
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from standin import Reply, Request, run, simple

_SIGNALS = (b"/v1/traces", b"/v1/metrics", b"/v1/logs")


class Sink:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def __call__(self, request: Request) -> Reply:
        if request.method == b"POST" and request.path in _SIGNALS:
            signal = request.path.decode().rpartition("/")[2]
            self.requests[signal] += 1
            self.bytes[signal] += len(request.body)
            return simple(200, b"application/x-protobuf", b"")
        if request.method == b"GET" and request.path == b"/stats":
            stats = {"requests": dict(self.requests), "bytes": dict(self.bytes)}
            return simple(200, b"application/json", json.dumps(stats).encode())
        return simple(404, b"text/plain", b"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    run(Sink(), args.host, args.port)


if __name__ == "__main__":
    main()
