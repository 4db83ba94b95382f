"""mistral.rs run in-process through ``mistralrs``, behind the same interface as a mistral.rs server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import mistralrs
import msgspec
from opentelemetry import trace

from app.errors import InvalidRequest, ModelNotFound, ProxyError, UpstreamError, UpstreamStatusError
from app.limiter import Limiter
from app.upstream.base import OPERATIONS, ModelAction, PayloadStream, Route
from app.upstream.embedded.bridge import EngineStream
from app.upstream.embedded.convert import (
    chat_request,
    chat_response,
    chunk_payload,
    completion_payload,
    completion_request,
    embedding_request,
)
from app.upstream.embedded.gguf import read_metadata
from app.upstream.embedded.sampling import own_parameters, renders_thinking, renders_tools
from app.upstream.embedded.spec import ModelSpec, ModelUnavailable
from app.upstream.timeouts import Silence, StreamTimeouts
from app.upstream.wire import ModelCard, ModelMetadata, ModelState

__all__ = ["EmbeddedUpstream", "engine_error"]

T = TypeVar("T")
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
_NO_STALLS = StreamTimeouts(first_byte=300.0, idle=300.0)
_CLOSE_WAIT, _CLOSE_POLL = 5.0, 0.05  # how long closing waits for producers to leave the engine, and how often it looks


def _loop_time(monotonic: float) -> float:
    """A ``time.monotonic()`` instant on the running loop's clock."""
    return asyncio.get_running_loop().time() + (monotonic - time.monotonic())


def _metadata_of(spec: ModelSpec) -> ModelMetadata | None:
    """The GGUF header's facts, for show, tags and ps; a file the reader does not understand shows less."""
    if spec.kind != "gguf" or not spec.filename:
        return None
    try:
        return read_metadata(Path(spec.location) / spec.filename)
    except Exception:  # the facts are a nicety: a file the engine may still load (or refuse) must not stop here
        return None


def engine_error(exc: BaseException) -> ProxyError:
    """What the client hears when the engine refuses or fails."""
    if isinstance(exc, ProxyError):
        return exc
    message = str(exc).strip() or type(exc).__name__
    if "incompatible for this model's category" in message:
        return InvalidRequest("this model does not support embeddings")
    if isinstance(exc, ValueError | OverflowError) and "not contiguous" not in message:
        return UpstreamStatusError(message, status_code=400, upstream_status=400)
    if not isinstance(exc, Exception):
        return UpstreamError(f"mistral.rs engine panicked: {message}")
    return UpstreamError(f"mistral.rs engine error: {message}")


class EmbeddedUpstream:
    """One model in a ``mistralrs.Runner``. Every Runner call holds one lock (the Runner is not thread-safe)."""

    logprob_scale = 1.0  # the library's logprobs are natural logarithms already

    def __init__(
        self,
        spec: ModelSpec,
        *,
        concurrency: int | None = None,
        max_queue: int = 64,
        timeouts: StreamTimeouts = _NO_STALLS,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.spec, self._timeouts = spec, timeouts
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("mistral-ollama-proxy.engine")
        # A request queued for a slot waits behind work that moves (unlike a silent server, which the first-byte
        # timeout is for), as in Ollama's queue: only its own deadline bounds the wait.
        # Eight slots: Open WebUI sends up to three background requests per message (a title, tags, follow-ups), and
        # on a small model some ramble on to their deadline while the user sends the next messages; a chat must share
        # the cores with them rather than queue behind them for minutes. Batched decoding on a CPU costs each
        # sequence speed, not the engine throughput.
        self.slots = Limiter(concurrency or 8, max_queue, None)
        # mistralrs 0.9.5 fails GGUF sequences of equal length prefilled together on CPU: a GGUF sequence starts
        # once no other is reading its prompt.
        self._prompts = asyncio.Semaphore(1) if spec.kind == "gguf" else None
        self.active_streams = 0  # engine streams whose producer thread has not finished
        self._runner: Any = None
        self._lock = threading.Lock()
        self._created = int(time.time())
        self.load_seconds = 0.0  # how long the last load took
        self._metadata = _metadata_of(spec)
        self._parameters = own_parameters(spec, self._metadata)
        self._tools = renders_tools(spec, self._metadata)
        self._thinking = renders_thinking(spec, self._metadata)

    def load(self) -> None:
        """Build the Runner (blocking): this is the model load."""
        which: Any
        if self.spec.kind == "gguf":
            which = mistralrs.Which.GGUF(quantized_model_id=self.spec.location, quantized_filename=self.spec.filename)
        else:
            which = mistralrs.Which.Plain(model_id=self.spec.location)
        started = time.perf_counter()
        try:
            self._runner = mistralrs.Runner(which=which)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            # The engine's error may carry a Rust backtrace (RUST_BACKTRACE=1): its first line is the message.
            reason = str(exc).strip().split("\n", 1)[0]
            raise ModelUnavailable(f"mistral.rs could not load {self.spec.name}: {reason}") from None
        self.load_seconds = time.perf_counter() - started

    @property
    def loaded(self) -> bool:
        return self._runner is not None

    async def list_models(self) -> list[ModelCard]:
        status = "loaded" if self.loaded else "unloaded"
        # As a mistral.rs server lists it: "default" first (the one model, by that name), then the model.
        # The engine loads text models only (Which.GGUF, Which.Plain): it shows a model no image.
        default = ModelCard(id="default", created=self._created, metadata=self._metadata, parameters=self._parameters,
                            tools=self._tools, thinking=self._thinking, vision=False)  # fmt: skip
        card = msgspec.structs.replace(default, id=self.spec.name, status=status)
        return [default, card]

    async def manage_model(self, action: ModelAction, model_id: str) -> ModelState:
        if model_id not in (self.spec.name, "default"):
            return ModelState(model_id=model_id, status="not_found")
        if action == "unload":
            self._runner = None  # in-flight streams keep the engine alive until they end
        elif action == "reload" and not self.loaded:
            try:
                await anyio.to_thread.run_sync(self.load)
            except ModelUnavailable as exc:
                return ModelState(model_id=model_id, status="internal_error", error=str(exc))
        return ModelState(model_id=model_id, status="loaded" if self.loaded else "unloaded")

    async def open_stream(self, route: Route, body: dict[str, Any], deadline: float | None = None) -> PayloadStream:
        if route == "embeddings":
            raise InvalidRequest("embeddings are not streamed")
        runner = await self._runner_for(body)
        build = chat_request if route == "chat" else completion_request
        request = build(body, self.spec.name)
        await self._admit(deadline)
        self.active_streams += 1
        span = self._tracer.start_span(f"mistralrs {OPERATIONS[route]}", kind=trace.SpanKind.INTERNAL)
        loop = asyncio.get_running_loop()
        prompt_read = threading.Event()

        def finished() -> None:
            self.active_streams -= 1
            self.slots.release()

        def prompt_done(read: bool) -> None:  # in the producer thread: the next prompt may be read
            if prompt_read.is_set():
                return
            prompt_read.set()
            if read:  # on a CPU the engine reads a prompt slowly (tens of tokens a second): the trace shows how long
                span.add_event("prompt read")
            if self._prompts is not None:
                with suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._prompts.release)

        # At each chunk: the engine has read the prompt (a completion comes whole, so too late to say when).
        on_first = partial(prompt_done, route == "chat")

        def on_exit() -> None:  # in the producer thread, once the engine no longer works for this stream
            prompt_done(False)
            span.end()
            with suppress(RuntimeError):  # the loop is closed: the server stopped, and its counts with it
                loop.call_soon_threadsafe(finished)

        try:
            encode: Callable[[Any], bytes]
            if route == "chat":
                chunks: Any = await self._call(runner.send_chat_completion_request, request)
                encode = partial(chunk_payload, model=self.spec.name)
            else:
                chunks = iter([await self._call(runner.send_completion_request, request)])
                encode = partial(completion_payload, model=self.spec.name)
            return EngineStream(chunks, encode, engine_error, on_exit, self._timeouts, deadline, on_first)
        except BaseException:
            on_exit()
            raise

    async def post(self, route: Route, body: dict[str, Any]) -> bytes:
        if route == "embeddings":
            runner = await self._runner_for(body)
            vectors = await self._call(runner.send_embedding_request, embedding_request(body))
            data = [{"object": "embedding", "embedding": vector, "index": i} for i, vector in enumerate(vectors)]
            usage = {"prompt_tokens": 0, "total_tokens": 0}  # the engine does not report them for embeddings
            return _encode({"object": "list", "data": data, "model": body.get("model"), "usage": usage})
        # Closed however this ends: a cancelled request (its client gone, its deadline passed) must stop the
        # engine's sequence and give back its slot, not leave the producer waiting for a reader forever.
        async with aclosing(await self.open_stream(route, body)) as stream:
            payloads = [payload async for burst in stream for payload in burst]
        if route == "completion":
            return payloads[0]
        return chat_response([_decode_object(payload) for payload in payloads], self.spec.name)

    async def health(self) -> bool:
        return self.loaded

    def health_checks(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        return {"embedded": self.health}

    def locations(self, model_id: str) -> list[str]:
        return []

    async def aclose(self) -> None:
        # Streams still open were told to stop (the drain ended them): let their producers leave the engine first,
        # each at its next token, or the process would exit under a running sequence, which aborts it.
        for _ in range(int(_CLOSE_WAIT / _CLOSE_POLL)):
            if not self.active_streams:
                break
            await asyncio.sleep(_CLOSE_POLL)
        self._runner = None

    async def _runner_for(self, body: dict[str, Any]) -> Any:
        if body.get("model", "default") not in (self.spec.name, "default"):
            raise ModelNotFound(str(body.get("model")))
        if self._runner is None:  # like mistral.rs, a request to an unloaded model loads it
            state = await self.manage_model("reload", self.spec.name)
            if state.error:
                raise UpstreamError(state.error)
        return self._runner

    async def _admit(self, deadline: float | None) -> None:
        """Wait for a slot, then (GGUF) for no other prompt being read, until the request's deadline (a whole
        answer's is its caller's ``asyncio.timeout``). Holds both on return."""
        try:
            async with asyncio.timeout_at(None if deadline is None else _loop_time(deadline)) as timer:
                await self.slots.acquire()
                try:
                    if self._prompts is not None:
                        await self._prompts.acquire()
                except BaseException:
                    self.slots.release()
                    raise
        except TimeoutError:
            if not timer.expired():
                raise
            raise self._timeouts.error(Silence.DEADLINE) from None

    async def _call(self, call: Callable[[Any], T], request: Any) -> T:
        def locked() -> T:
            with self._lock:
                return call(request)

        try:
            return await anyio.to_thread.run_sync(locked)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                raise
            raise engine_error(exc) from None
