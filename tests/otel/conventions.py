"""The GenAI semantic conventions the proxy follows, as one table; the check of one exported item against it; and
the traffic both paths (in-memory exporters, the real Collector) check.

From the registry at REGISTRY (github.com/open-telemetry/semantic-conventions, tag v1.41.1): model/gen-ai/spans.yaml
(``span.gen_ai.inference.client``, ``span.gen_ai.embeddings.client`` and the attribute groups they extend),
model/gen-ai/metrics.yaml (``metric_attributes.gen_ai``, ``metric_attributes.gen_ai.server`` and the four metrics the
proxy records), model/server and model/error. What Weaver's ``registry live-check`` would hold the proxy to, without
Weaver: it is on no registry here. The access log is no convention of its own: its record may carry registry
attributes and the proxy's namespace only, and no ``error.type`` on success.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tests.emulator import Emulator, Reply

REGISTRY = "v1.41.1"
OWN_NAMESPACE = "ollama_proxy."
# Where the registry has them as stable (opentelemetry.semconv.attributes); every gen_ai.* one is in development.
STABLE = frozenset({"server.address", "server.port", "error.type", "http.request.method", "http.route",
                    "http.response.status_code"})  # fmt: skip


@dataclass(frozen=True)
class Signal:
    """Requirement levels of one span kind or metric: ``conditional`` maps an attribute to its condition."""

    required: frozenset[str]
    conditional: Mapping[str, str]
    recommended: frozenset[str]
    opt_in: frozenset[str] = frozenset()
    own: frozenset[str] = frozenset()  # the proxy's own, in its namespace (README: Metrics)

    def allowed(self) -> frozenset[str]:
        return self.required | set(self.conditional) | self.recommended | self.opt_in | self.own


_SERVER = {"server.port": "if server.address is set"}
_FAILED = {"error.type": "if the operation ended in an error"}
_METRIC = Signal(
    required=frozenset({"gen_ai.operation.name", "gen_ai.provider.name"}),
    conditional={"gen_ai.request.model": "if available", **_SERVER},
    recommended=frozenset({"server.address", "gen_ai.response.model"}),
    own=frozenset({"ollama_proxy.upstream"}),
)
METRICS: dict[str, Signal] = {
    "gen_ai.client.token.usage": Signal(
        _METRIC.required | {"gen_ai.token.type"}, _METRIC.conditional, _METRIC.recommended, own=_METRIC.own
    ),
    "gen_ai.client.operation.duration": Signal(
        _METRIC.required, {**_METRIC.conditional, **_FAILED}, _METRIC.recommended, own=_METRIC.own
    ),
    "gen_ai.server.time_to_first_token": _METRIC,
    "gen_ai.server.time_per_output_token": _METRIC,
}
_COMMON = {"gen_ai.request.model": "if available", **_SERVER, **_FAILED}
INFERENCE = Signal(
    required=frozenset({"gen_ai.operation.name", "gen_ai.provider.name"}),
    conditional={
        **_COMMON,
        "gen_ai.request.choice.count": "if available, in the request, and != 1",
        "gen_ai.request.seed": "if the request includes a seed",
        "gen_ai.request.stream": "if and only if the request is streaming",
        "gen_ai.output.type": "if the request includes an output format",
        "gen_ai.conversation.id": "when available",
    },
    recommended=frozenset({
        "server.address", "gen_ai.request.max_tokens", "gen_ai.request.temperature", "gen_ai.request.top_p",
        "gen_ai.request.top_k", "gen_ai.request.stop_sequences", "gen_ai.request.frequency_penalty",
        "gen_ai.request.presence_penalty", "gen_ai.response.id", "gen_ai.response.model",
        "gen_ai.response.finish_reasons", "gen_ai.response.time_to_first_chunk", "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.reasoning.output_tokens",
    }),
    opt_in=frozenset({"gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages",
                      "gen_ai.tool.definitions"}),
)  # fmt: skip
EMBEDDINGS = Signal(
    required=frozenset({"gen_ai.operation.name", "gen_ai.provider.name"}),
    conditional=_COMMON,
    recommended=frozenset({"server.address", "gen_ai.request.encoding_formats", "gen_ai.usage.input_tokens",
                           "gen_ai.embeddings.dimension.count", "gen_ai.response.model"}),
)  # fmt: skip
SPANS: dict[str, Signal] = {"chat": INFERENCE, "text_completion": INFERENCE, "embeddings": EMBEDDINGS}
ACCESS_LOG = Signal(
    required=frozenset({"http.request.method", "http.route", "http.response.status_code"}),
    conditional={**_FAILED, "gen_ai.request.model": "for a generation",
                 "gen_ai.usage.input_tokens": "when counted", "gen_ai.usage.output_tokens": "when counted"},
    recommended=frozenset(),
    own=frozenset({"ollama_proxy.duration_ms"}),
)  # fmt: skip


HI = [{"role": "user", "content": "hi"}]


def traffic(http: httpx.Client, emulator: Emulator, model: str = "mistral") -> int:
    """Every kind of GenAI operation, streamed and not, succeeding and failing (12 operations, one more request
    for a model that does not exist); the number of requests sent."""
    chat, stream = {"model": model, "messages": HI}, {"model": model, "messages": HI, "stream": True}
    sent = [
        http.post("/api/chat", json={**chat, "stream": False, "options": {"seed": 7, "temperature": 0.2}}),
        http.post("/api/chat", json=chat),
        http.post("/api/generate", json={"model": model, "prompt": "hi", "stream": False}),
        http.post("/api/generate", json={"model": model, "prompt": "hi"}),
        http.post("/api/generate", json={"model": model, "prompt": "hi", "raw": True, "stream": False}),
        http.post("/api/embed", json={"model": model, "input": ["a", "b"]}),
        http.post("/v1/chat/completions", json={**chat, "max_tokens": 8}),
        http.post("/v1/chat/completions", json=stream),
        http.post("/v1/messages", json={**chat, "max_tokens": 8}),
        http.post("/v1/responses", json={"model": model, "input": "hi", "stream": True}),
        http.post("/api/chat", json={"model": "no-such-model", "messages": HI}),
    ]
    assert [response.status_code for response in sent] == [200] * 10 + [404]
    emulator.script(Reply(status=500, error_message="the engine failed"))
    assert http.post("/v1/chat/completions", json=chat).status_code == 502
    emulator.script(Reply(content="one two three", error_after=2))
    assert http.post("/api/chat", json=chat).text.endswith('"}\n')  # an error line ends the stream
    return len(sent) + 2


def violations(signal: Signal, attributes: Mapping[str, Any], *, failed: bool | None) -> list[str]:
    """What is wrong with one exported item; ``failed`` says whether its operation failed (None: not known from the
    item itself, as for a metric point, where error.type is what says it)."""
    found = [f"required {name} is missing" for name in sorted(signal.required - set(attributes))]
    stray = set(attributes) - signal.allowed()
    found += [f"{name} is not in the conventions for this signal" for name in sorted(stray)]
    if "server.address" in attributes and "server.port" not in attributes and "server.port" in signal.conditional:
        found.append("server.port is missing though server.address is set")
    error = attributes.get("error.type")
    if error is not None and (error in ("", "none") or failed is False):
        found.append(f"error.type is {error!r} on an operation that did not fail")
    if failed and error is None and "error.type" in signal.conditional:
        found.append("error.type is missing on a failed operation")
    if attributes.get("gen_ai.request.stream", True) is not True:
        found.append("gen_ai.request.stream is set on a request that is not streaming")
    return found
