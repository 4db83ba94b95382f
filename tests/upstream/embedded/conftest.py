from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import Settings
from app.upstream.embedded import EmbeddedUpstream, resolve
from otel.telemetry import Telemetry
from tests.servers import Server, serve_in_thread
from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def engine_limits() -> dict[str, int]:
    return {}


@pytest.fixture
def engine(
    tiny_model: Path, engine_limits: dict[str, int], telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> EmbeddedUpstream:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = resolve(str(tiny_model), tiny_model.parent)
    upstream = EmbeddedUpstream(spec, tracer_provider=telemetry.tracer_provider, **engine_limits)  # type: ignore[arg-type]
    upstream.load()
    return upstream


@pytest.fixture
def proxy(engine: EmbeddedUpstream, telemetry: Telemetry) -> Iterator[Server]:
    with serve_in_thread(create_app(Settings(), telemetry=telemetry, upstream=engine)) as server:
        yield server
