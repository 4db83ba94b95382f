"""The proxy tells a malformed body's error in Go's words, compared with Go's own encoding/json Decoder (the one
Ollama reads bodies with) over a few thousand broken bodies, and through a route."""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from app.http.go_json import Scan, scan

DECODER = Path(__file__).parent / "go_decode" / "main.go"
SEEDS = [
    {"model": "smollm2:135m", "messages": [{"role": "user", "content": 'Say "hi"\n\u00e9\\'}], "stream": False},
    {"a": [1, -2.5, 3e10, 0, -0.0, 1e-7, True, False, None, "", [], {}], "b": {"c": {"d": [[[]]]}}},
    {"prompt": "\\u0041 \t tab", "options": {"temperature": 0.8, "stop": ["\n", "</s>"]}, "images": ["QQ=="]},
]
# Bytes that move a scanner between its states: structure, literals' letters, escapes, controls, non-ASCII.
ALPHABET = b"{}[]:,\"\\ \t\n0123456789.eE+-tfnulrsaxbu/\x00\x1f\x7f\xc3\xa9\xff'"


def _broken(rng: random.Random) -> bytes:
    text = bytearray(json.dumps(rng.choice(SEEDS), ensure_ascii=rng.random() < 0.5).encode())
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text))
        edit = rng.random()
        if edit < 0.3:
            del text[at]
        elif edit < 0.6:
            text.insert(at, rng.choice(ALPHABET))
        elif edit < 0.9:
            text[at] = rng.choice(ALPHABET)
        else:
            del text[at:]
            break
    return bytes(text) if bytes(text).strip() else b"{"


def _go(bodies: list[bytes], tmp_path: Path) -> list[Scan]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("!!! NOT RUN: no Go toolchain to compare with (scripts/build-programs.sh installs one)")
    binary = tmp_path / "go_decode"
    subprocess.run([go, "build", "-o", str(binary), str(DECODER)], check=True, capture_output=True, timeout=600)
    lines = "".join(base64.b64encode(body).decode() + "\n" for body in bodies)
    done = subprocess.run([str(binary)], input=lines, capture_output=True, text=True, check=True, timeout=120)
    found = []
    for line in done.stdout.splitlines():
        kind, value = line.split(" ", 1)
        found.append(Scan(base64.b64decode(value).decode(), 0) if kind == "error" else Scan(None, int(value)))
    return found


def test_every_error_and_every_end_is_gos(tmp_path: Path) -> None:
    rng = random.Random(20261207)
    bodies = [_broken(rng) for _ in range(3000)]
    bodies += [b"[" * 10001, b"[" * 10000 + b"]" * 10000, b'{"model":"x"} trailing', b'{"a":1}{"b":2}', b"12x"]
    expected = _go(bodies, tmp_path)
    ours = [scan(body) for body in bodies]
    # Go's offset after an error is not part of what a client sees; after a whole value it is where reading stopped.
    ours = [Scan(found.error, 0) if found.error is not None else found for found in ours]
    wrong = [(body[:80], mine, gos) for body, mine, gos in zip(bodies, ours, expected, strict=True) if mine != gos]
    assert not wrong, f"{len(wrong)} of {len(bodies)} differ from Go, for example {wrong[:5]}"
    kinds = {found.error.split(" ", 3)[-1] if found.error else "whole" for found in expected}
    assert len(kinds) >= 12, f"the corpus reaches too few of the scanner's states: {sorted(kinds)}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid character 'n' looking for beginning of object key string"),
        (b'{"model": "m", "messages": [', "unexpected EOF"),
        (b'{"model": "m",}', "invalid character '}' looking for beginning of object key string"),
        (b'{"model": "m" "stream": false}', "invalid character '\"' after object key:value pair"),
    ],
)
def test_a_route_answers_a_syntax_error_as_ollama(http: httpx.Client, body: bytes, message: str) -> None:
    response = http.post("/api/chat", content=body)
    assert (response.status_code, response.json()) == (400, {"error": message})


def test_what_follows_the_first_value_is_not_read_as_in_ollama(http: httpx.Client) -> None:
    response = http.post("/api/show", content=b'{"model": "no-such-model"} and then {"model"')
    assert (response.status_code, response.json()) == (404, {"error": "model 'no-such-model' not found"})
