"""The emulator answers each recorded request as the real mistral.rs server did: same status, content type and
shape, and the same error wording where the proxy reads it (tests/transcripts.py; recorded by
scripts/record-transcripts.py into tests/fixtures/mistralrs-<version>/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.upstream.http.errors import _NOT_AVAILABLE, _RELOADING
from tests.emulator import Emulator, ModelEntry
from tests.servers import serve_in_thread
from tests.transcripts import Transcript, body_shape, record, requests

FIXTURES = Path(__file__).parents[1] / "fixtures"
RECORDED = sorted(FIXTURES.glob("mistralrs-*"))
ORDER = [request.name for request in requests("model")]
# Where the emulator follows mistral.rs 0.9 (the release the reference describes, and the in-process engine's)
# rather than 0.8.1, the newest on crates.io: the real 0.8.1 answer is checked instead, by test_version_gaps.
FOLLOWS_NEWER = {"metrics": "mistral.rs 0.8.1 serves no /metrics; 0.9 does, and the emulator with it"}


def _recorded() -> list[tuple[str, str]]:
    found = [(folder.name, name) for folder in RECORDED for name in ORDER if (folder / f"{name}.json").exists()]
    return found


def _load(version: str, name: str) -> tuple[str, Transcript]:
    data = json.loads((FIXTURES / version / f"{name}.json").read_text())
    return data["model"], Transcript.from_json(data)


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, httpx.Client]]:
    """One emulator per recorded version, serving the recorded model, kept across the requests (their order
    matters: unload, status, reload)."""
    clients: dict[str, httpx.Client] = {}
    servers = []
    try:
        for folder in RECORDED:
            model, _ = _load(folder.name, "models")
            server = serve_in_thread(Emulator([ModelEntry(model, category="text")]).app)
            servers.append(server)
            clients[folder.name] = httpx.Client(base_url=server.__enter__().url, timeout=30)
        yield clients
    finally:
        for client in clients.values():
            client.close()
        for server in servers:
            server.__exit__(None, None, None)


def test_transcripts_are_recorded() -> None:
    assert [version for version, name in _recorded() if name == "chat"] == [folder.name for folder in RECORDED]
    assert RECORDED, "no transcripts: python scripts/record-transcripts.py"


@pytest.mark.parametrize(("version", "name"), _recorded(), ids=[f"{v}/{n}" for v, n in _recorded()])
def test_the_emulator_answers_as_the_real_server(emulators: dict[str, httpx.Client], version: str, name: str) -> None:
    model, real = _load(version, name)
    if name in FOLLOWS_NEWER:
        pytest.skip(FOLLOWS_NEWER[name])
    request = next(request for request in requests(model) if request.name == name)
    emulated = record(emulators[version], request)
    assert (emulated.status, emulated.content_type) == (real.status, real.content_type), emulated.body[:300]
    assert body_shape(emulated) == body_shape(real)
    for wording in (_NOT_AVAILABLE, _RELOADING):  # what the proxy reads in an error message
        assert bool(wording.search(emulated.body)) == bool(wording.search(real.body)), (emulated.body, real.body)


def test_version_gaps_are_what_they_say() -> None:
    for folder in RECORDED:
        if folder.name == "mistralrs-0.8.1":
            _, metrics = _load(folder.name, "metrics")
            assert (metrics.status, metrics.body) == (404, "")
