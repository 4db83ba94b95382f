"""The models mistral.rs serves, under the names Ollama clients use for them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.errors import ModelNotFound
from app.models.names import display_name, normalize
from app.upstream.base import Upstream
from app.upstream.wire import ModelCard

__all__ = ["Entry", "ModelCatalog"]

DEFAULT_ID = "default"
_MIN_REFRESH_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # as listed to Ollama clients, always tagged
    card: ModelCard

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def loaded(self) -> bool:
        return self.card.status in (None, "loaded")


class ModelCatalog:
    """Resolves Ollama names (case-insensitive, ``:latest`` optional, aliases) to mistral.rs ids.

    The list is cached for ``ttl`` seconds; a name that is not found triggers one early refresh (at most
    once a second) so that a model mistral.rs just gained is found without waiting.
    """

    def __init__(
        self,
        upstream: Upstream,
        aliases: Mapping[str, str],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        visible: Callable[[Entry], bool] | None = None,
    ) -> None:
        """``visible``: whether the caller being served may see a model (a tenant's allowed models); one it may
        not see is not found, and not listed, as if it did not exist."""
        self._upstream, self._aliases, self._ttl, self._clock = upstream, aliases, ttl, clock
        self._visible = visible
        self._entries: list[Entry] = []
        self._lookup: dict[str, Entry] = {}
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def entries(self, *, fresh: bool = False) -> list[Entry]:
        if fresh or self._clock() - self._fetched > self._ttl:
            await self._refresh(self._fetched)
        if self._visible is not None:
            return [entry for entry in self._entries if self._visible(entry)]
        return self._entries

    async def resolve(self, name: str, missing: str | None = None) -> Entry:
        """The entry of ``name``, else ``ModelNotFound`` (with ``missing`` as its message: routes word it as
        Ollama does on each)."""
        if (entry := await self.find(name)) is None:
            raise ModelNotFound(name, missing)
        return entry

    async def find(self, name: str) -> Entry | None:
        await self.entries()
        key = normalize(name)
        if key not in self._lookup and self._clock() - self._fetched > _MIN_REFRESH_INTERVAL:
            await self._refresh(self._fetched)
        entry = self._lookup.get(key)
        return entry if entry is None or self._visible is None or self._visible(entry) else None

    def set_status(self, model_id: str, status: str) -> None:
        for entry in self._entries:
            if entry.id == model_id:
                entry.card.status = status

    async def _refresh(self, seen: float) -> None:
        async with self._lock:
            if self._fetched != seen:  # another task refreshed while we waited
                return
            cards = await self._upstream.list_models()
            self._entries, self._lookup = self._build(cards)
            self._fetched = self._clock()

    def _build(self, cards: list[ModelCard]) -> tuple[list[Entry], dict[str, Entry]]:
        entries: list[Entry] = []
        lookup: dict[str, Entry] = {}
        for card in cards:
            if card.id == DEFAULT_ID:
                lookup[normalize(DEFAULT_ID)] = Entry(display_name(DEFAULT_ID), card)
                continue
            # The model under its own name first, then each alias: each entry keeps its own name.
            aliases = (alias for alias, target in self._aliases.items() if target == card.id)
            names = list(dict.fromkeys([display_name(card.id), *aliases]))
            for name in names:
                entry = Entry(name, card)
                entries.append(entry)
                lookup.setdefault(normalize(name), entry)
            lookup.setdefault(normalize(card.id), entries[-len(names)])
        for alias, target in self._aliases.items():
            if target == DEFAULT_ID and normalize(DEFAULT_ID) in lookup:
                lookup.setdefault(normalize(alias), lookup[normalize(DEFAULT_ID)])
        return entries, lookup
