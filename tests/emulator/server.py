"""The `Emulator`: its state (models, scripted replies, counters, recorded requests) and its routes."""

from __future__ import annotations

import asyncio
import http
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.emulator.chat import _chat_payloads, _chat_response, _completion_payloads, _completion_response
from tests.emulator.embeddings import _embeddings_body
from tests.emulator.faults import _BrokenBody, _Held
from tests.emulator.front_door import _FrontDoor
from tests.emulator.replies import ModelEntry, Recorded, Reply, _chat_prompt_tokens, _Plan, _plan, _words
from tests.emulator.stream import _events, _EventStream
from tests.emulator.wire import _dumps, _error, _json, _raw, _read_json, _Reject, _serde_kind, _text

_TEMPLATE_ERROR = (
    "invalid operation: tried to use + operator on unsupported types string and sequence (in chat_template:4)"
)


def _too_long(entry: ModelEntry) -> str:
    return f"Prompt sequence length is greater than {entry.context_length}, perhaps consider using `truncate_sequence`?"


async def _empty_error(request: Request, exc: Exception) -> Response:
    # axum's fallback 404 and method-not-allowed 405 have empty bodies.
    assert isinstance(exc, HTTPException)
    return Response(b"", status_code=exc.status_code, headers=exc.headers)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Reject)
    return exc.response


class Emulator:
    """A scripted mistral.rs server.

    `app` is the ASGI app; `requests` every request received (recorded before it is answered);
    `next_id` the engine sequence counter, one step per admitted chat/completion request (one
    counter for all models; embeddings and rejected requests take none); `disconnects` the
    `time.monotonic()` at which an abandoned stream was noticed; `active_streams` the streams being
    sent. `keepalive_every=N` sends the `:\\n\\n` keep-alive comment before every Nth data event of
    a stream (the error event counts, `[DONE]` does not). An unknown model lists every configured
    model as available; `default` (or no `model`) is the first one.

    Faults: per reply see `Reply`; `fail_next_gets(n, status)` makes the next n GETs of `/v1/models`
    or `/health` fail; `restart()` forgets what a real server forgets when it restarts.

    `reply_for`, when set, picks each chat or completion request's reply from its body (None: the script's
    next, as without it): for clients too concurrent for the script's order to say which request takes which.
    """

    def __init__(self, models: list[str | ModelEntry] | None = None, *, keepalive_every: int = 0) -> None:
        if models is None:
            models = [ModelEntry("mistral-7b"), ModelEntry("Qwen/Qwen3-4B", "unloaded")]
        self.models = [m if isinstance(m, ModelEntry) else ModelEntry(m) for m in models]
        self.keepalive_every = keepalive_every
        self.created = int(time.time())
        self.next_id = 0
        self.requests: list[Recorded] = []
        self.disconnects: list[float] = []
        self.active_streams = 0
        self.waiting = 0  # what /metrics reports as mistralrs_sequences_waiting (the engine's queue)
        self.tokens_processed = 0
        self._replies: deque[Reply] = deque()
        self.reply_for: Callable[[dict[str, Any]], Reply | None] | None = None
        self._initial_statuses = [(entry, entry.status) for entry in self.models]
        self._failing_gets: deque[tuple[int, str]] = deque()
        self.app: ASGIApp = _FrontDoor(self._starlette(), self)

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def fail_next_gets(self, n: int, status: int = 503, message: str | None = None) -> None:
        """Answer the next `n` GETs of `/v1/models` or `/health` with `status` and
        `{"message": message}` (default: the status's reason phrase, e.g. "Service Unavailable").
        Calls queue up. The requests are recorded in `requests` like any other."""
        text = http.HTTPStatus(status).phrase if message is None else message
        self._failing_gets.extend([(status, text)] * n)

    def restart(self) -> None:
        """What a restart of the real server resets: the sequence counter (`next_id` back to 0), the
        models' statuses (back to their values when the emulator was built), the engine counters of
        `/metrics` and `created` (the server's creation time). Scripts, `requests` and `disconnects`
        are test bookkeeping and are kept. Stopping and starting the HTTP server is up to the test."""
        self.next_id = 0
        self.tokens_processed = 0
        self.created = int(time.time())
        for entry, status in self._initial_statuses:
            entry.status = status

    def model(self, id: str) -> ModelEntry:
        for entry in self.models:
            if entry.id == id:
                return entry
        raise KeyError(id)

    def _starlette(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/completions", self._completions, methods=["POST"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
            Route("/v1/models/status", self._status, methods=["POST"]),
            Route("/v1/models/unload", self._unload, methods=["POST"]),
            Route("/v1/models/reload", self._reload, methods=["POST"]),
            Route("/re_isq", self._re_isq, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/", self._health, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]
        handlers = {_Reject: _rejected, HTTPException: _empty_error}
        return Starlette(routes=routes, exception_handlers=handlers)

    # ------------------------------------------------------------------------ generation

    @staticmethod
    def _fitted(prompt_tokens: int, entry: ModelEntry, body: dict[str, Any]) -> int:
        """A prompt longer than the context: refused, or with ``truncate_sequence`` cut to the context's length."""
        if prompt_tokens <= entry.context_length:
            return prompt_tokens
        if body.get("truncate_sequence") is True:
            return entry.context_length
        raise _Reject(_json({"message": _too_long(entry)}, 422))

    async def _chat(self, request: Request) -> ASGIApp:
        body = await _read_json(request, "ChatCompletionRequest", ("messages",))
        entry = await self._admit(body)
        messages = body["messages"]
        if (
            entry.category == "text"
            and isinstance(messages, list)
            and any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages)
        ):  # a GGUF chat template (SmolLM2's) concatenates content as a string
            raise _error(500, _TEMPLATE_ERROR)
        prompt_tokens = self._fitted(_chat_prompt_tokens(messages), entry, body)
        reply = self._reply(body)
        if reply.status is not None:
            return self._held(reply, self._status_reply(reply))
        plan = _plan(reply, prompt_tokens, body, chat=True)
        head = self._head(entry, plan)
        if body.get("stream") is True:
            payloads = _chat_payloads(head, plan, reply)
            return self._held(reply, _EventStream(self, _events(self, payloads, reply)))
        return self._held(reply, await self._answer(_chat_response(head, plan), plan, reply))

    async def _completions(self, request: Request) -> ASGIApp:
        body = await _read_json(request, "CompletionRequest", ("prompt",))
        prompt = body["prompt"]
        if not isinstance(prompt, str):
            problem = f"prompt: invalid type: {_serde_kind(prompt)}, expected a string"
            raise _Reject(_text(f"Failed to deserialize the JSON body into the target type: {problem}", 422))
        entry = await self._admit(body)
        prompt_tokens = self._fitted(_words(prompt), entry, body)
        reply = self._reply(body)
        if reply.status is not None:
            return self._held(reply, self._status_reply(reply))
        plan = _plan(reply, prompt_tokens, body, chat=False)
        head = self._head(entry, plan)
        if body.get("stream") is True:
            payloads = _completion_payloads(head, plan, reply)
            return self._held(reply, _EventStream(self, _events(self, payloads, reply)))
        return self._held(reply, await self._answer(_completion_response(head, plan), plan, reply))

    def _reply(self, body: dict[str, Any]) -> Reply:
        chosen = self.reply_for(body) if self.reply_for is not None else None
        if chosen is not None:
            return chosen
        return self._replies.popleft() if self._replies else Reply()

    def _status_reply(self, reply: Reply) -> Response:
        assert reply.status is not None
        body = _dumps({"message": reply.error_message}) if reply.body is None else reply.body
        response = _raw(reply.status, body)
        response.headers.update(reply.status_headers or {})
        return response

    def _held(self, reply: Reply, app: ASGIApp) -> ASGIApp:
        return _Held(self, app, reply.first_byte_delay) if reply.first_byte_delay > 0 else app

    async def _admit(self, body: dict[str, Any]) -> ModelEntry:
        entry = self._resolve(body.get("model"))
        if entry.status == "reloading":
            raise _error(500, f"model `{entry.id}` is being reloaded")
        if entry.status == "unloaded":
            await self._load(entry)
        return entry

    def _resolve(self, name: Any) -> ModelEntry:
        if not self.models:
            raise _error(500, "No models are currently loaded.")
        if name is None or name == "default":
            return self.models[0]
        for entry in self.models:
            if entry.id == name:
                return entry
        available = ", ".join(m.id for m in self.models)
        raise _error(
            500,
            f"Requested model '{name}' is not available. Available models: {available}. "
            "Use 'default' to use the default model.",
        )

    async def _load(self, entry: ModelEntry) -> None:
        entry.status = "reloading"
        await asyncio.sleep(entry.load_delay)
        entry.status = "loaded"

    def _head(self, entry: ModelEntry, plan: _Plan) -> dict[str, Any]:
        head = {"id": str(self.next_id), "created": int(time.time()), "model": entry.id}
        self.next_id += 1
        self.tokens_processed += plan.usage["total_tokens"]
        return head

    async def _answer(self, obj: dict[str, Any], plan: _Plan, reply: Reply) -> ASGIApp:
        chunks = len(plan.reasoning or []) + len(plan.content) + (1 if plan.tool_calls else 0)
        if reply.delay:
            await asyncio.sleep(reply.delay * chunks)
        if reply.error_after is not None:
            response = _json({"message": reply.error_message}, 500)
        else:
            response = _json(obj)
        return _BrokenBody(self, response, reply) if reply._breaks_body() else response

    async def _embeddings(self, request: Request) -> Response:
        body = await _read_json(request, "EmbeddingRequest", ("input",))
        if (await self._admit(body)).category == "text":
            raise _error(500, "Received a request incompatible for this model's category.")
        return _json(_embeddings_body(body))

    # ------------------------------------------------------------------------ models and misc

    def _failing_get(self, request: Request) -> Response | None:
        if request.method != "GET" or request.url.path not in ("/v1/models", "/health") or not self._failing_gets:
            return None
        status, message = self._failing_gets.popleft()
        return _json({"message": message}, status)

    async def _list_models(self, request: Request) -> Response:
        failed = self._failing_get(request)
        if failed is not None:
            return failed

        def card(model_id: str) -> dict[str, Any]:
            return {
                "id": model_id,
                "object": "model",
                "created": self.created,
                "owned_by": "local",
            }

        data = [card("default")] + [{**card(m.id), "status": m.status} for m in self.models]
        return _json({"object": "list", "data": data})

    async def _status(self, request: Request) -> Response:
        return await self._manage(request, "status")

    async def _unload(self, request: Request) -> Response:
        return await self._manage(request, "unload")

    async def _reload(self, request: Request) -> Response:
        return await self._manage(request, "reload")

    async def _manage(self, request: Request, action: str) -> Response:
        body = await _read_json(request, "ModelIdRequest", ("model_id",))
        model_id = body["model_id"]
        entry = next((m for m in self.models if m.id == model_id), None)
        if entry is None:
            return _json({"model_id": model_id, "status": "not_found"})
        if action == "unload":
            entry.status = "unloaded"
        elif action == "reload" and entry.status != "loaded":
            await self._load(entry)
        return _json({"model_id": model_id, "status": entry.status})

    async def _re_isq(self, request: Request) -> Response:
        body = await _read_json(request, "ReIsqRequest", ("ggml_type",))
        return _text(f"Re ISQ: {json.dumps(body['ggml_type'])}")

    async def _health(self, request: Request) -> Response:
        failed = self._failing_get(request)
        return _text("OK") if failed is None else failed

    async def _metrics(self, request: Request) -> Response:
        lines = [
            "# HELP mistralrs_sequences_running Number of sequences currently running.",
            "# TYPE mistralrs_sequences_running gauge",
            f"mistralrs_sequences_running {self.active_streams}",
            "# HELP mistralrs_sequences_waiting Number of sequences waiting to be scheduled.",
            "# TYPE mistralrs_sequences_waiting gauge",
            f"mistralrs_sequences_waiting {self.waiting}",
            "# HELP mistralrs_tokens_processed_total Total number of tokens processed.",
            "# TYPE mistralrs_tokens_processed_total counter",
            f"mistralrs_tokens_processed_total {self.tokens_processed}",
        ]
        media = "text/plain; version=0.0.4; charset=utf-8"
        return Response("\n".join(lines) + "\n", media_type=media)
