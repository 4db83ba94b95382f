"""The GenAI span and metrics of one generation, fed by the chunks the proxy relays.

``GenAIObserver.start`` opens a CLIENT span ``{operation} {model}`` (semconv v1.41.1) before mistral.rs is
called, so that the upstream HTTP span nests under it; ``otel.chunks.observe`` feeds it the chunk stream, marking
the generation's ``Clock`` (``otel.clock``); ``Invocation.stop``/``fail`` end the span and record the GenAI and
``mistral_generate_*`` metrics exactly once. The application's generation lifecycle (``app.generation``) is the
one caller of those.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from otel.chunks import Chunk, Usage
from otel.clock import Clock
from otel.metrics import ModelLabels, ProxyMetrics
from otel.record import current_record
from otel.semconv import (
    ERROR_TYPE,
    MODEL,
    PROVIDER,
    PROXY_UPSTREAM,
    SERVER_ADDRESS,
    SERVER_PORT,
    TENANT,
    TOKEN_TYPE,
    UPSTREAM,
    GenAI,
)

__all__ = [
    "CLIENT_DISCONNECTED",
    "GenAIObserver",
    "Invocation",
    "error_type_of",
    "place",
    "untraced",
]

CLIENT_DISCONNECTED = "client_disconnected"
_current: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("genai_invocation", default=None)
_log = logging.getLogger(__name__)
_REQUEST_ATTRIBUTES = {
    "max_tokens": GenAI.REQUEST_MAX_TOKENS,
    "temperature": GenAI.REQUEST_TEMPERATURE,
    "top_p": GenAI.REQUEST_TOP_P,
    "top_k": GenAI.REQUEST_TOP_K,
    "frequency_penalty": GenAI.REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": GenAI.REQUEST_PRESENCE_PENALTY,
    "seed": GenAI.REQUEST_SEED,
}


def untraced() -> AbstractContextManager[None]:
    """No spans for what runs inside (the periodic health check would otherwise be a trace every 15 s)."""
    return suppress_instrumentation()


def place(upstream: str, address: str, port: int | None) -> None:
    """The mistral.rs server that serves the current invocation, when there are several to choose from: its
    ``server.address``/``server.port`` on the span and the metrics, its name as the metrics' ``upstream`` label."""
    if (invocation := _current.get()) is not None:
        invocation.placed(upstream, address, port)


def error_type_of(exc: BaseException) -> str:
    """A short, stable class for ``error.type`` and the ``error_type`` label."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return CLIENT_DISCONNECTED
    error_type: str = getattr(exc, "error_type", "") or type(exc).__qualname__
    return error_type


class Invocation:
    """One GenAI operation in flight. ``stop``/``fail`` finalise it; only the first call counts."""

    def __init__(self, observer: GenAIObserver, span: Span, operation: str, model: str, clock: Clock) -> None:
        self._observer, self.span, self.operation, self.model, self.clock = observer, span, operation, model, clock
        self.server, self.upstream = observer.server, observer.upstream
        self.started = time.perf_counter_ns()
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.counted = 0
        self.response_id = self.response_model = ""
        self.finish_reasons: list[str] = []
        self.output: list[str] | None = [] if observer.capture_content else None
        self.done = False
        self.record = current_record()  # the HTTP request this runs for, if any: its access log names model and tokens

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make the GenAI span current, so that the upstream call is traced under it (and can ``place`` it)."""
        token = _current.set(self)
        try:
            with trace.use_span(self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield
        finally:
            _current.reset(token)

    def placed(self, upstream: str, address: str, port: int | None) -> None:
        self.server = {SERVER_ADDRESS: address} if port is None else {SERVER_ADDRESS: address, SERVER_PORT: port}
        self.upstream = upstream
        self.span.set_attributes(self.server)

    def on_chunk(self, chunk: Chunk) -> None:
        if not self.response_id:
            self.response_id, self.response_model = chunk.id, chunk.model
        if chunk.usage is not None:
            self.input_tokens, self.output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        for choice in chunk.choices:
            delta = choice.delta
            text = delta.content if delta is not None else choice.text
            if text or (delta is not None and (delta.reasoning_content or delta.tool_calls)):
                self.clock.mark()
                self.counted += 1
                if self.output is not None and text:
                    self.output.append(text)
            if choice.finish_reason is not None:
                self.finish_reasons.append(choice.finish_reason)

    def on_response(
        self, response_id: str, model: str, finish_reasons: list[str], usage: Usage | None, text: str | None
    ) -> None:
        """A whole (non-streamed) answer: no first-token time to learn, only what it reports."""
        self.response_id, self.response_model = response_id, model
        self.finish_reasons = finish_reasons
        if self.output is not None and text:
            self.output.append(text)
        if usage is not None:
            self.input_tokens, self.output_tokens = usage.prompt_tokens, usage.completion_tokens

    @property
    def produced(self) -> int | None:
        """Output tokens: as reported, else the chunks counted, else unknown."""
        return self.output_tokens if self.output_tokens is not None else self.counted or None

    @property
    def tokens_used(self) -> int | None:
        """Input and output tokens as far as they are known."""
        output = self.produced
        if self.input_tokens is None and not output:
            return None
        return (self.input_tokens or 0) + (output or 0)

    def on_embeddings(self, model: str, input_tokens: int | None) -> None:
        self.response_model, self.input_tokens = model, input_tokens

    def stop(self) -> None:
        self._finish(None)

    def fail(self, error_type: str) -> None:
        self._finish(error_type)

    def _finish(self, error_type: str | None) -> None:
        if self.done:
            return
        self.done = True
        if error_type is not None and self.record is not None and self.record.error_type is None:
            self.record.error_type = error_type  # the HTTP request failed with it (its first error wins)
        try:
            self._observer.finish(self, error_type, time.perf_counter_ns())
        except Exception:  # telemetry must never break a request
            _log.debug("failed to record GenAI telemetry", exc_info=True)


class GenAIObserver:
    def __init__(
        self,
        metrics: ProxyMetrics,
        tracer_provider: TracerProvider | None = None,
        *,
        server_address: str = "",
        server_port: int | None = None,
        upstream: str = "",
        capture_content: bool = False,
    ) -> None:
        """``server_address``, ``server_port`` and ``upstream`` (the label) describe the one mistral.rs server every
        invocation goes to; with several, each invocation is ``place``d."""
        self.metrics = metrics
        self.capture_content = capture_content
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("mistral-ollama-proxy.genai")
        self._labels = ModelLabels()
        self.server: dict[str, str | int] = {SERVER_ADDRESS: server_address} if server_address else {}
        if server_port is not None:
            self.server[SERVER_PORT] = server_port
        self.upstream = upstream

    def start(self, operation: str, model: str, request: Mapping[str, Any], *, clock: Clock) -> Invocation:
        attributes: dict[str, Any] = {
            GenAI.OPERATION: operation,
            GenAI.PROVIDER_NAME: PROVIDER,
            GenAI.REQUEST_MODEL: model,
            **self.server,
        }
        for field, key in _REQUEST_ATTRIBUTES.items():
            value = request.get(field)
            if isinstance(value, bool | int | float) and value is not None:
                attributes[key] = value
        if request.get("stream") is True:  # set if and only if streaming: unset means not
            attributes[GenAI.REQUEST_STREAM] = True
        if isinstance(stop := request.get("stop"), list) and stop:
            attributes[GenAI.REQUEST_STOP_SEQUENCES] = [str(item) for item in stop]
        if self.capture_content:
            attributes[GenAI.INPUT_MESSAGES] = json.dumps(
                request.get("messages", request.get("prompt", request.get("input")))
            )
        span = self._tracer.start_span(f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes)
        return Invocation(self, span, operation, self._labels(model), clock)

    @contextmanager
    def loading(self, model: str) -> Iterator[None]:
        """An INTERNAL span over a model load, and its duration in ``mistral_model_load_duration_seconds``."""
        name = f"load_model {model}"
        with self._tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, attributes={GenAI.REQUEST_MODEL: model}):
            started = time.perf_counter_ns()
            yield
            seconds = (time.perf_counter_ns() - started) / 1e9
            self.metrics.model_load_duration.record(seconds, {MODEL: self._labels(model)})

    def finish(self, invocation: Invocation, error_type: str | None, now: int) -> None:
        span, metrics = invocation.span, self.metrics
        context = trace.set_span_in_context(span)
        base = {GenAI.OPERATION: invocation.operation, GenAI.PROVIDER_NAME: PROVIDER,
                GenAI.REQUEST_MODEL: invocation.model, **invocation.server}  # fmt: skip
        if invocation.response_model:
            base[GenAI.RESPONSE_MODEL] = invocation.response_model
        mistral = {MODEL: invocation.model}
        if invocation.upstream:
            base[PROXY_UPSTREAM] = mistral[UPSTREAM] = invocation.upstream
        output = invocation.produced
        self._annotate(span, invocation, output)
        if error_type is not None:
            span.set_attribute(ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        duration_attributes = {**base, ERROR_TYPE: error_type} if error_type else base
        metrics.operation_duration.record((now - invocation.started) / 1e9, duration_attributes, context=context)
        if invocation.input_tokens is not None:
            metrics.token_usage.record(
                invocation.input_tokens, {**base, GenAI.TOKEN_TYPE: GenAI.INPUT}, context=context
            )
        if output is not None and invocation.operation != GenAI.EMBEDDINGS:
            metrics.token_usage.record(output, {**base, GenAI.TOKEN_TYPE: GenAI.OUTPUT}, context=context)
            metrics.generate_tokens.add(output, mistral, context=context)
        if (record := invocation.record) is not None and record.tenant is not None:
            self._count_tenant_tokens(record.tenant, invocation, output)
        self._record_timings(invocation, base, mistral, output, error_type, now, context)
        span.end()
        if (record := invocation.record) is not None:
            record.model, record.input_tokens = invocation.model, invocation.input_tokens
            record.output_tokens = output if invocation.operation != GenAI.EMBEDDINGS else None

    def _count_tenant_tokens(self, tenant: str, invocation: Invocation, output: int | None) -> None:
        for kind, count in ((GenAI.INPUT, invocation.input_tokens), (GenAI.OUTPUT, output)):
            if count:
                self.metrics.tenant_tokens.add(count, {TENANT: tenant, MODEL: invocation.model, TOKEN_TYPE: kind})

    def _annotate(self, span: Span, invocation: Invocation, output: int | None) -> None:
        """The response's attributes, set in one call (each ``set_attribute`` takes the span's lock)."""
        attributes: dict[str, Any] = {}
        if invocation.response_id:
            attributes[GenAI.RESPONSE_ID] = invocation.response_id
            attributes[GenAI.RESPONSE_MODEL] = invocation.response_model
        if invocation.finish_reasons:
            attributes[GenAI.RESPONSE_FINISH_REASONS] = invocation.finish_reasons
        if invocation.input_tokens is not None:
            attributes[GenAI.USAGE_INPUT_TOKENS] = invocation.input_tokens
        if output is not None and invocation.operation != GenAI.EMBEDDINGS:
            attributes[GenAI.USAGE_OUTPUT_TOKENS] = output
        if invocation.counted:
            attributes[GenAI.RESPONSE_TIME_TO_FIRST_CHUNK] = (invocation.clock.first - invocation.started) / 1e9
        if invocation.output is not None:
            message = {"role": "assistant", "parts": [{"type": "text", "content": "".join(invocation.output)}]}
            attributes[GenAI.OUTPUT_MESSAGES] = json.dumps([message])
        span.set_attributes(attributes)

    def _record_timings(
        self,
        invocation: Invocation,
        base: dict[str, Any],
        mistral: dict[str, str],
        output: int | None,
        error_type: str | None,
        now: int,
        context: Any,
    ) -> None:
        metrics, clock = self.metrics, invocation.clock
        # A whole (non-streamed) answer has no first token of its own: its clock is the engine's estimate.
        first, last = (clock.first, clock.last) if invocation.counted else (0, 0)
        if first:
            ttft = (first - clock.start) / 1e9
            metrics.time_to_first_token.record(ttft, base, context=context)
        if output is not None and output > 1 and last > first:
            per_token = (last - first) / 1e9 / (output - 1)
            metrics.time_per_output_token.record(per_token, base, context=context)
        if error_type is None and invocation.operation != GenAI.EMBEDDINGS:
            seconds = ((last or now) - invocation.started) / 1e9
            metrics.generate_duration.record(seconds, mistral, context=context)
