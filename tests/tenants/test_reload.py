"""The keys file of a running `mistral-ollama-proxy serve`, changed under it: read again on SIGHUP and when it
changes, a stream in flight undisturbed, and a broken file keeping the last good keys."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.emulator import Emulator, Reply
from tests.processes import cli, free_port
from tests.servers import Server
from tests.waiting import eventually

TEAM_A = "tenants:\n  - {name: team-a, keys: [key-a]}\n"
BOTH = TEAM_A + "  - {name: team-new, keys: [key-new]}\n"
HI = [{"role": "user", "content": "hi"}]


def _status(url: str, key: str) -> int:
    return httpx.get(f"{url}/api/tags", headers={"authorization": f"Bearer {key}"}, timeout=10).status_code


def test_the_keys_file_is_read_again_without_dropping_a_request(
    upstream: Server, emulator: Emulator, tmp_path: Path
) -> None:
    keys, log = tmp_path / "keys.yaml", tmp_path / "proxy.log"
    keys.write_text(TEAM_A)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MISTRAL_URL": upstream.url, "API_KEYS_FILE": str(keys), "MODEL_ALIASES": "mistral=mistral-7b"}
    with log.open("w") as out:
        process = subprocess.Popen([cli(), "serve", "--bind", f"127.0.0.1:{port}"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        eventually(lambda: _up(url), within=60.0, every=0.1)
        assert (_status(url, "key-a"), _status(url, "key-new")) == (200, 401)
        # SIGHUP reads it again even unchanged (the watcher alone reads it only when it changes).
        process.send_signal(signal.SIGHUP)
        eventually(lambda: "reloaded: 1 tenants" in log.read_text(), within=30.0, every=0.1)
        # A stream in flight while the file changes goes on to its end.
        emulator.script(Reply(content="a b c d e f", delay=0.2))
        body = {"model": "mistral", "messages": HI}
        with httpx.stream("POST", f"{url}/api/chat", json=body, headers={"authorization": "Bearer key-a"},
                          timeout=30) as stream:  # fmt: skip
            lines = stream.iter_lines()
            first = next(lines)
            keys.write_text(BOTH)
            eventually(lambda: _status(url, "key-new") == 200, within=30.0, every=0.1)
            rest = list(lines)
        assert '"done":false' in first and '"done":true' in rest[-1], rest[-1]
        # A broken file: the last good keys stay, and the log says why.
        keys.write_text(BOTH + "    limits: {burst: 1}\n")
        eventually(lambda: "not reloaded, the last good keys stay in use" in log.read_text(), within=30.0, every=0.1)
        assert (_status(url, "key-a"), _status(url, "key-new")) == (200, 200)
        assert "key-new" not in log.read_text() and "key-a" not in log.read_text()
    finally:
        process.terminate()
        process.wait(30)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
