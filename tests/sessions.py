"""Simulated Open WebUI users, for soaks (tests/faults/test_session_soak.py, bench/session_soak.py): the requests a chat
session makes, in Open WebUI's shapes, from clients that give up as people do.

A user holds chat sessions: a chat (streamed, or now and then not) carrying the whole history, half the sessions
starting with a long one, and beside it the background requests, while the next chat is already on its way: after
the first answer the title (``stream: false``, ``num_predict: 1000``) and the tags, after every answer the follow-ups
(both ``stream: false``, no options). Each request's fate is drawn when it is planned: answered; given up by its
client (``leave``: a stream before any byte, a whole answer after a random wait, queued or being generated, the
client's read timeout closing the connection; ``leave_mid``: a stream after a few lines); or sent with the header
``x-deadline``, for a second proxy whose REQUEST_TIMEOUT_SECS is short (the soaks serve both on one server).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from app.limiter import Limiter

__all__ = [
    "DEADLINE_HEADER",
    "FATES",
    "Call",
    "Fate",
    "Kind",
    "Mix",
    "Pair",
    "Shape",
    "Users",
    "mark",
    "send",
    "sentence",
]

Kind = Literal["chat", "title", "tags", "follow_ups"]
Fate = Literal["answer", "leave", "leave_mid", "deadline"]
FATES: tuple[Fate, ...] = ("answer", "leave", "leave_mid", "deadline")
DEADLINE_HEADER = "x-deadline"
# What Open WebUI's task prompts ask for; the chat history follows each.
TASKS = {
    "title": "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.",
    "tags": "### Task:\nGenerate 1-3 broad tags categorizing the main themes of the chat history.",
    "follow_ups": "### Task:\nSuggest 3-5 relevant follow-up questions the user might naturally ask next.",
}
_WORDS = "the a model answer question lighthouse keeper story bread dragon river city light night".split()


@dataclass(frozen=True)
class Mix:
    """How the users behave: how many, how long (``sessions`` each, or None: until the run's end), and the odds of
    each fate (answer, leave, leave_mid, deadline) for a chat and for a background request."""

    users: int
    sessions: int | None
    turns: int
    long_history: int  # messages in a long history
    patience: float  # the longest a client that gives up waits first
    chat_odds: tuple[float, float, float, float]
    background_odds: tuple[float, float, float, float]
    whole_chats: float = 0.2  # the share of chats sent with ``stream: false``


@dataclass
class Call:
    """One request: its plan, then what its client saw and when (``time.time_ns()``, the clock spans use)."""

    number: int
    user: int
    kind: Kind
    body: dict[str, Any]
    fate: Fate
    patience: float  # "leave": seconds the client waits for a byte before it hangs up
    lines: int  # "leave_mid": lines read before it hangs up
    seed: int
    tokens: int = 0  # what the plan expects the answer to count (eval_count), when it knows
    status: int | None = None  # None: no status line arrived
    replies: list[dict[str, Any]] = field(default_factory=list)  # the NDJSON lines, or the one JSON answer
    error: str | None = None  # what the client met that no fate allows
    sent: int = 0
    first: int = 0  # its status line arrived
    ended: int = 0  # its answer ended, or its client hung up

    @property
    def stream(self) -> bool:
        return bool(self.body["stream"])

    @property
    def trace(self) -> str:
        """The trace id it carries (``traceparent``): its spans, and mistral.rs's request, can be found by it."""
        return f"{self.seed & 0xFFFFFFFF:08x}{self.number:024x}"

    @property
    def answer(self) -> str:
        return "".join(reply.get("message", {}).get("content", "") for reply in self.replies)


class Pair:
    """Two proxies on one server, and so on one event loop (the in-process engine's slots belong to one): a request
    with the header ``x-deadline`` goes to ``strict``, whose REQUEST_TIMEOUT_SECS is short."""

    def __init__(self, main: Starlette, strict: Starlette) -> None:
        self.main, self.strict = main, strict

        @asynccontextmanager
        async def both(_: Starlette) -> AsyncIterator[None]:
            async with main.router.lifespan_context(main), strict.router.lifespan_context(strict):
                yield

        self._lifespan = Starlette(lifespan=both)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        strict = any(name == DEADLINE_HEADER.encode() for name, _ in scope.get("headers", ()))
        await (self.strict if strict else self.main)(scope, receive, send)

    @property
    def limiters(self) -> tuple[Limiter, Limiter]:
        return self.main.state.services.generations.limiter, self.strict.state.services.generations.limiter


# Adjusts a planned call (options, the reply an emulator gives) from the user's random generator.
Shape = Callable[[random.Random, Call], None]


class Users:
    """The simulated users of one run against ``url``, and every request they made (``calls``).

    With ``mix.sessions`` set, fates are dealt from decks, a hand to each user, so that every fate the odds allow
    comes up; without, they are drawn at random, and the users go on until ``until`` (``time.monotonic()``). A client
    waits at most ``hang`` seconds for a byte (but one that gives up): only a hang reaches it.
    """

    def __init__(
        self,
        url: str,
        model: str,
        mix: Mix,
        *,
        seed: int,
        shape: Shape | None = None,
        until: float | None = None,
        hang: float = 120.0,
    ) -> None:
        self.url, self.model, self.mix, self.seed, self.until, self.hang = url, model, mix, seed, until, hang
        self._shape = shape or (lambda rng, call: None)
        self.calls: list[Call] = []
        self._numbers = itertools.count(1)
        self._hands = _hands(random.Random(seed), mix) if mix.sessions is not None else None

    def run(self) -> list[Call]:
        with ThreadPoolExecutor(self.mix.users) as users:
            list(users.map(self._user, range(self.mix.users)))
        return self.calls

    def _user(self, user: int) -> None:
        rng = random.Random(self.seed * 1000 + user)
        chats, background = self._fates(user, rng)
        threads: list[threading.Thread] = []
        for _ in range(self.mix.sessions) if self.mix.sessions is not None else itertools.count():
            if self.until is not None and time.monotonic() >= self.until:
                break
            history = _history(rng, self.mix.long_history) if rng.random() < 0.5 else []
            for turn in range(self.mix.turns):
                chat = self._chat(rng, user, next(chats), history)
                send(self.url, chat, self.hang)
                history = [*history, chat.body["messages"][-1], {"role": "assistant", "content": chat.answer}]
                for kind in ("title", "tags", "follow_ups") if turn == 0 else ("follow_ups",):
                    call = self._background(rng, user, kind, next(background), history)
                    threads.append(threading.Thread(target=send, args=(self.url, call, self.hang)))
                    threads[-1].start()
                if self.until is not None and time.monotonic() >= self.until:
                    break
            threads = [thread for thread in threads if thread.is_alive()]
        for thread in threads:
            thread.join()

    def _fates(self, user: int, rng: random.Random) -> tuple[Iterator[Fate], Iterator[Fate]]:
        if self._hands is not None:
            chats, background = self._hands[user]
            return iter(chats), iter(background)
        mix = self.mix

        def drawn(odds: tuple[float, ...]) -> Iterator[Fate]:
            while True:
                yield rng.choices(FATES, odds)[0]

        return drawn(mix.chat_odds), drawn(mix.background_odds)

    def _chat(self, rng: random.Random, user: int, fate: Fate, history: list[dict[str, str]]) -> Call:
        stream = fate == "leave_mid" or rng.random() >= self.mix.whole_chats
        question = {"role": "user", "content": sentence(rng, rng.randint(5, 25))}
        body = {"model": self.model, "messages": [*history, question], "stream": stream}
        return self._plan(rng, user, "chat", body, fate)

    def _background(self, rng: random.Random, user: int, kind: Kind, fate: Fate, history: list[dict[str, str]]) -> Call:
        transcript = "\n".join(f"{message['role'].upper()}: {message['content']}" for message in history)
        prompt = f"{TASKS[kind]}\n### Chat History:\n<chat_history>\n{transcript}\n</chat_history>"
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "stream": False}
        if kind == "title":
            body["options"] = {"num_predict": 1000}
        return self._plan(rng, user, kind, body, fate)

    def _plan(self, rng: random.Random, user: int, kind: Kind, body: dict[str, Any], fate: Fate) -> Call:
        number = next(self._numbers)
        patience, lines = rng.uniform(0.0, self.mix.patience), rng.randint(1, 5)
        call = Call(number, user, kind, body, fate, patience, lines, self.seed)
        body["messages"][-1]["content"] += f" [#{number}]"  # what an emulator picks the reply by (``mark``)
        self._shape(rng, call)
        self.calls.append(call)
        return call


def send(url: str, call: Call, hang: float) -> None:
    """Sends ``call`` to ``url``'s /api/chat as its fate says, and notes what came back; ``hang`` bounds any wait
    but a leaving client's."""
    timeout = httpx.Timeout(hang, read=call.patience if call.fate == "leave" else hang)
    headers = {"traceparent": f"00-{call.trace}-{call.number:016x}-01"}
    if call.fate == "deadline":
        headers[DEADLINE_HEADER] = "short"
    call.sent = time.time_ns()
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", f"{url}/api/chat", json=call.body, headers=headers) as response,
        ):
            call.status, call.first = response.status_code, time.time_ns()
            if call.fate == "leave":
                return  # its first byte came before its patience ran out: it hangs up all the same
            for line in response.iter_lines():
                call.replies.append(json.loads(line))
                if call.fate == "leave_mid" and len(call.replies) == call.lines and not call.replies[-1]["done"]:
                    return  # leaving the block closes the connection
    except httpx.ReadTimeout:
        if call.fate != "leave":
            call.error = f"no byte for {hang} s"
    except Exception as exc:  # noqa: BLE001 - reported with the call
        call.error = repr(exc)
    finally:
        call.ended = time.time_ns()


def mark(body: dict[str, Any]) -> int | None:
    """The number of the call that sent ``body`` (mistral.rs's form of it), from its last message."""
    content = body["messages"][-1]["content"]
    start = content.rfind(" [#")
    return int(content[start + 3 : -1]) if start >= 0 and content.endswith("]") else None


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _history(rng: random.Random, messages: int) -> list[dict[str, str]]:
    roles = itertools.cycle(("user", "assistant"))
    return [{"role": next(roles), "content": sentence(rng, rng.randint(30, 80))} for _ in range(messages)]


def _hands(rng: random.Random, mix: Mix) -> list[tuple[list[Fate], list[Fate]]]:
    assert mix.sessions is not None
    chats, background = mix.sessions * mix.turns, mix.sessions * (mix.turns + 2)  # each user's
    chat_deck = _deck(rng, mix.chat_odds, mix.users * chats)
    background_deck = _deck(rng, mix.background_odds, mix.users * background)
    return [
        (chat_deck[user * chats : (user + 1) * chats], background_deck[user * background : (user + 1) * background])
        for user in range(mix.users)
    ]


def _deck(rng: random.Random, odds: tuple[float, ...], cards: int) -> list[Fate]:
    """``cards`` fates in proportion to ``odds`` (each possible one at least once), shuffled."""
    counts = [max(1, round(share * cards)) if share else 0 for share in odds]
    counts[0] += cards - sum(counts)  # what rounding left over is answered
    deck = [fate for fate, count in zip(FATES, counts, strict=True) for _ in range(count)]
    rng.shuffle(deck)
    return deck
