"""The catalog: Ollama names to mistral.rs ids, cached, refreshed early (at most once a second) for an unknown name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.errors import ModelNotFound
from app.models import ModelCatalog
from app.upstream import ModelAction, ModelCard, ModelState, Route
from tests.clock import ManualClock


class _Upstream:
    logprob_scale = 1.0

    def __init__(self, ids: list[str]) -> None:
        self.ids, self.listings = ids, 0

    async def list_models(self) -> list[ModelCard]:
        self.listings += 1
        return [ModelCard(id=model_id, status="loaded") for model_id in self.ids]

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState:
        raise AssertionError("the catalog only lists")

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> Any:
        raise AssertionError("the catalog only lists")

    async def post(self, route: Route, body: dict[str, Any]) -> bytes:
        raise AssertionError("the catalog only lists")

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


def test_names_resolve_case_insensitively_with_or_without_latest_and_through_aliases() -> None:
    upstream = _Upstream(["mistral-7b", "Qwen/Qwen3-4B", "/models/tiny.gguf"])
    catalog = ModelCatalog(upstream, {"mistral:latest": "mistral-7b"}, ttl=10.0)

    async def resolve(name: str) -> tuple[str, str]:
        entry = await catalog.resolve(name)
        return entry.name, entry.id

    assert asyncio.run(resolve("MISTRAL")) == ("mistral:latest", "mistral-7b")
    assert asyncio.run(resolve("mistral-7b:latest")) == ("mistral-7b:latest", "mistral-7b")
    assert asyncio.run(resolve("qwen/qwen3-4b")) == ("Qwen/Qwen3-4B:latest", "Qwen/Qwen3-4B")
    assert asyncio.run(resolve("tiny")) == ("tiny:latest", "/models/tiny.gguf")
    assert upstream.listings == 1  # all within the cache's lifetime
    assert [entry.name for entry in asyncio.run(catalog.entries())] == [
        "mistral-7b:latest", "mistral:latest", "Qwen/Qwen3-4B:latest", "tiny:latest"]  # fmt: skip


def test_an_unknown_name_refreshes_once_a_second_at_most_then_is_not_found() -> None:
    upstream, clock = _Upstream(["a"]), ManualClock(100.0)
    catalog = ModelCatalog(upstream, {}, ttl=10.0, clock=clock)

    async def scenario() -> list[int]:
        listings = []
        await catalog.resolve("a")
        upstream.ids = ["a", "b"]
        clock.now += 0.5
        with pytest.raises(ModelNotFound) as missing:
            await catalog.resolve("b")  # too soon after the last listing: not refreshed
        assert missing.value.message == "model 'b' not found"
        listings.append(upstream.listings)
        clock.now += 1.0
        assert (await catalog.resolve("b")).id == "b"  # refreshed early for it
        listings.append(upstream.listings)
        clock.now += 10.5
        await catalog.resolve("a")  # the cache expired
        listings.append(upstream.listings)
        return listings

    assert asyncio.run(scenario()) == [1, 2, 3]


def test_set_status_is_seen_by_every_entry_of_the_model() -> None:
    catalog = ModelCatalog(_Upstream(["m"]), {"one:latest": "m", "two:latest": "m"}, ttl=10.0)
    entries = asyncio.run(catalog.entries())
    catalog.set_status("m", "unloaded")
    assert [(entry.name, entry.loaded) for entry in entries] == [
        ("m:latest", False), ("one:latest", False), ("two:latest", False)]  # fmt: skip
