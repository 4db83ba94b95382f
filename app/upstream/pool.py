"""Several mistral.rs servers behind one ``Upstream``: one model catalog, and each request sent to a server that
serves its model.

The policy, in order:

1. **Servers that list the model.** A model no server lists goes to any server (mistral.rs answers the 404).
2. **Servers in rotation.** A server leaves it when its health check fails or a connection to it is refused, and
   comes back when a health check passes. When every server with the model is out, they are tried all the same:
   a check may be older than the server's recovery, and trying costs one refused connection.
3. **Servers that have the model loaded**, so that a request does not wait for a load another server spared.
4. **The least loaded**: fewest requests outstanding from this proxy plus the engine's own queue
   (``mistralrs_sequences_waiting``, read with each health check where the server exposes ``/metrics``), plus
   one, divided by the server's weight. The proxy's own count is exact and immediate; the engine's queue adds
   what other proxies sent, at the health check's pace. Ties go to the server picked least often (per weight),
   so that an idle pool is used round-robin.

A request whose connection was refused (nothing was sent) is tried once more, on another server. Nothing is
retried once a server has the request: it may have started generating, and its client may have bytes already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
import msgspec

from app.errors import ProxyError, UpstreamUnreachable
from app.upstream.base import ModelAction, PayloadStream, Route
from app.upstream.http.client import HTTPUpstream
from app.upstream.wire import ModelCard, ModelState
from otel.genai import place

__all__ = ["Member", "UpstreamPool"]

T = TypeVar("T")
_log = logging.getLogger(__name__)
_LOADED = (None, "loaded")


class Member:
    """One server of the pool, and what the pool knows of it."""

    __slots__ = ("client", "weight", "name", "address", "port", "up", "outstanding", "picked", "waiting", "cards")

    def __init__(self, client: HTTPUpstream, weight: float = 1.0) -> None:
        self.client, self.weight, self.name = client, weight, client.name
        url = httpx.URL(client.base_url)
        self.address, self.port = url.host, url.port
        self.up = True  # until a check or a connection says otherwise
        self.outstanding = 0  # requests from this proxy not yet finished there
        self.picked = 0
        self.waiting = 0.0  # the engine's queue at the last health check
        self.cards: dict[str, ModelCard] = {}  # as it last listed them

    def has(self, model_id: str) -> bool:
        return model_id in self.cards

    def loaded(self, model_id: str) -> bool:
        card = self.cards.get(model_id)
        return card is not None and card.status in _LOADED

    def set_status(self, model_id: str, status: str | None) -> None:
        if (card := self.cards.get(model_id)) is not None:
            self.cards[model_id] = msgspec.structs.replace(card, status=status)

    def rank(self) -> tuple[float, float]:
        return (self.outstanding + self.waiting + 1) / self.weight, self.picked / self.weight


class _Counted:
    """A stream that holds its server's outstanding count until it is closed."""

    __slots__ = ("_stream", "_member")

    def __init__(self, stream: PayloadStream, member: Member) -> None:
        self._stream: PayloadStream = stream
        self._member: Member | None = member

    def __aiter__(self) -> AsyncIterator[list[bytes]]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        member, self._member = self._member, None
        if member is not None:
            member.outstanding -= 1
        await self._stream.aclose()


class UpstreamPool:
    """An ``Upstream`` over several mistral.rs servers; see the module docstring for the routing policy."""

    def __init__(self, members: Sequence[Member]) -> None:
        if len({member.name for member in members}) != len(members):
            raise ValueError("every upstream needs its own name")
        self.members = list(members)
        self.logprob_scale = self.members[0].client.logprob_scale  # one setting for every server

    # --- the catalog ------------------------------------------------------------------------------------------------

    async def list_models(self) -> list[ModelCard]:
        """Every model any server lists, once: loaded if loaded anywhere. Servers out of rotation are not asked
        (each would cost its connection retries) and keep the models they listed last, so that their requests
        fail over or wait for them rather than turn into "model not found"; if no server answers, its error."""
        asked = [member for member in self.members if member.up] or self.members
        answers = await asyncio.gather(*(m.client.list_models() for m in asked), return_exceptions=True)
        failures = []
        for member, answer in zip(asked, answers, strict=True):
            if isinstance(answer, ProxyError):
                failures.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                member.cards = {card.id: card for card in answer}
        if len(failures) == len(asked):
            raise failures[0]
        merged: dict[str, ModelCard] = {}
        for member in self.members:
            for model_id, card in member.cards.items():
                if model_id not in merged or (card.status in _LOADED and merged[model_id].status not in _LOADED):
                    merged[model_id] = card
        # Copies: the catalog marks its cards loaded or unloaded, which says nothing of any one server.
        return [msgspec.structs.replace(card) for card in merged.values()]

    def locations(self, model_id: str) -> list[str]:
        return [member.name for member in self.members if member.up and member.loaded(model_id)]

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState:
        """``unload`` on every server that has the model loaded; ``status`` and ``reload`` on the one a request
        would go to (so a load lands where the next request does)."""
        if action == "unload":
            holders = [member for member in self.members if member.loaded(model_id)] or [self._choose(model_id)]
            states = await asyncio.gather(*(member.client.manage_model(action, model_id) for member in holders))
            for member, state in zip(holders, states, strict=True):
                member.set_status(model_id, state.status)
            return next((state for state in states if state.status != "unloaded"), states[0])
        member = self._choose(model_id)
        state = await member.client.manage_model(action, model_id)
        member.set_status(model_id, state.status)
        return state

    # --- generations ------------------------------------------------------------------------------------------------

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> PayloadStream:
        async def attempt(member: Member) -> PayloadStream:
            return _Counted(await member.client.open_stream(route, body, deadline), member)

        return await self._send(body, attempt, hold=True)

    async def post(self, route: Route, body: dict[str, Any]) -> bytes:
        return await self._send(body, lambda member: member.client.post(route, body), hold=False)

    async def _send(self, body: dict[str, Any], attempt: Callable[[Member], Awaitable[T]], *, hold: bool) -> T:
        """Send to the chosen server; once more to another if the first refused the connection. ``hold``: the
        result (a stream) keeps the server's outstanding count until it is closed."""
        model_id = str(body.get("model", ""))
        tried: list[Member] = []
        while True:
            member = self._choose(model_id, tried)
            tried.append(member)
            member.picked += 1
            member.outstanding += 1
            place(member.name, member.address, member.port)
            held = False
            try:
                result = await attempt(member)
                held = hold
                return result
            except UpstreamUnreachable:
                self._leave(member)
                if len(tried) > 1 or len(tried) == len(self._holders(model_id)):
                    raise
            finally:
                if not held:
                    member.outstanding -= 1

    def _holders(self, model_id: str) -> list[Member]:
        return [member for member in self.members if member.has(model_id)] or self.members

    def _choose(self, model_id: str, tried: Sequence[Member] = ()) -> Member:
        holders = [member for member in self._holders(model_id) if member not in tried] or self._holders(model_id)
        candidates = [member for member in holders if member.up] or holders
        candidates = [member for member in candidates if member.loaded(model_id)] or candidates
        return min(candidates, key=Member.rank)

    def _leave(self, member: Member) -> None:
        if member.up:
            _log.warning("mistral.rs at %s refused a connection: out of rotation until its health check passes",
                         member.name)  # fmt: skip
        member.up = False

    # --- health -----------------------------------------------------------------------------------------------------

    async def health(self) -> bool:
        """Some server answers (readiness of the pool as a whole): the first answer decides, so that a dead server,
        whose check retries its connection, does not hold the readiness probe up."""
        checks = [asyncio.ensure_future(member.client.health()) for member in self.members]
        try:
            for answered in asyncio.as_completed(checks):
                with contextlib.suppress(ProxyError):
                    if await answered:
                        return True
            return False
        finally:
            for check in checks:
                check.cancel()

    def health_checks(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        return {member.name: _check(member) for member in self.members}

    async def aclose(self) -> None:
        await asyncio.gather(*(member.client.aclose() for member in self.members))


def _check(member: Member) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            await member.client.health()
        except BaseException:  # failing, or cancelled by the check's timeout: out of rotation either way
            member.up = False
            raise
        member.up = True
        try:
            member.waiting = await member.client.sequences_waiting() or 0.0
        except (httpx.HTTPError, ValueError):  # no metrics, or unreadable ones: the proxy's own count decides
            member.waiting = 0.0
        return True

    return check
