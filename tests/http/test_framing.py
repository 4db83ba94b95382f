"""HTTP framing by the book, over raw sockets against ``mistral-ollama-proxy serve`` (Hypercorn with the proxy's
fixes in app/http/server.py; the tests' in-thread servers are stock Hypercorn)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import cli, free_port
from tests.servers import Server
from tests.waiting import eventually


@dataclass
class Proxy:
    port: int
    process: subprocess.Popen[str]

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock


@pytest.fixture
def proxy(upstream: Server) -> Iterator[Proxy]:
    port = free_port()
    env = {**os.environ, "MISTRAL_URL": upstream.url}
    command = [cli(), "serve", "--bind", f"127.0.0.1:{port}", "--model-aliases", "mistral:latest=mistral-7b"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: _answers(port), within=30.0)
        yield Proxy(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        log = process.stderr.read()
        process.stderr.close()
        assert "Traceback" not in log, log[-3000:]


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def _requests(port: int) -> dict[tuple[str, str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.labels["endpoint"], s.labels["status"], s.labels["error_type"]): s.value
            for family in text_string_to_metric_families(text) if family.name == "mistral_http_requests"
            for s in family.samples if s.name == "mistral_http_requests_total"}  # fmt: skip


def test_content_length_with_transfer_encoding_is_answered_then_closed(proxy: Proxy) -> None:
    body = json.dumps({"model": "mistral"}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    first = (b"POST /api/show HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
             b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)  # fmt: skip
    pipelined = b"GET /api/version HTTP/1.1\r\nHost: proxy\r\n\r\n"
    with proxy.connect() as sock:
        sock.sendall(first + pipelined)
        answer = _read_to_end(sock)
    head, _, rest = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 ", answer[:500]
    assert b"connection: close" in [line.lower() for line in lines[1:]]
    assert json.loads(rest)["details"]["family"]  # the show answer, read by the chunked framing
    assert answer.count(b"HTTP/1.1 ") == 1  # the pipelined request was not served on this connection


def test_a_bad_chunk_is_counted_as_the_400_the_client_got(proxy: Proxy) -> None:
    start = (b"POST /api/chat HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\n")  # fmt: skip
    with proxy.connect() as sock:
        sock.sendall(start)
        sock.sendall(b"zz\r\n")  # not a chunk size
        answer = _read_to_end(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    expected = {("/api/chat", "400", "bad_framing"): 1.0}
    eventually(lambda: {key: n for key, n in _requests(proxy.port).items() if key[0] == "/api/chat"} == expected,
               within=10.0)  # fmt: skip


def _h2_status(sock: socket.socket, connection: h2.connection.H2Connection, stream_id: int) -> tuple[bytes, bytes]:
    """The status and body of one stream's answer."""
    status, body = b"", b""
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                status = dict(event.headers)[b":status"]
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                body += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                return status, body
        sock.sendall(connection.data_to_send())


@pytest.mark.parametrize("path", ["/api/caf\u00e9".encode(), b"/\xff\xfe"], ids=["utf-8", "not-utf-8"])
def test_an_http2_path_that_is_not_ascii_gets_400_and_the_connection_goes_on(proxy: Proxy, path: bytes) -> None:
    connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    with proxy.connect() as sock:
        sock.sendall(connection.data_to_send())
        for stream_id, request_path in ((1, path), (3, b"/")):
            headers = [(b":method", b"GET"), (b":path", request_path), (b":scheme", b"http"),
                       (b":authority", b"proxy")]  # fmt: skip
            connection.send_headers(stream_id, headers, end_stream=True)
            sock.sendall(connection.data_to_send())
            answers = _h2_status(sock, connection, stream_id)
            assert answers == ((b"400", b"") if stream_id == 1 else (b"200", b"Ollama is running"))
