"""Transcripts of a mistral.rs server: a fixed set of requests, their raw answers, and the shape they must keep.

``scripts/record-transcripts.py`` records them from the real server into ``tests/fixtures/mistralrs-<version>/``;
``tests/conformance/test_transcripts.py`` replays each request against the emulator and compares shapes: status,
content type, JSON keys and value types (recursively), SSE framing, and the error text the proxy relies on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["REQUESTS", "Transcript", "frames", "record", "shape"]

HI = [{"role": "user", "content": "Say hello."}]
# A prompt longer than SmolLM2's 8,192-token context.
LONG = " ".join(["word"] * 9000)
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@dataclass(frozen=True)
class Request:
    name: str
    method: str
    path: str
    body: Any = None  # JSON, or bytes sent as they are
    content_type: str = "application/json"


def requests(model: str) -> list[Request]:
    chat = {"model": model, "messages": HI, "max_tokens": 4}
    return [
        Request("health", "GET", "/health"),
        Request("models", "GET", "/v1/models"),
        Request("chat", "POST", "/v1/chat/completions", chat),
        Request("chat_stream", "POST", "/v1/chat/completions", {**chat, "stream": True}),
        Request("completion", "POST", "/v1/completions", {"model": model, "prompt": "Say hello.", "max_tokens": 4}),
        Request("completion_stream", "POST", "/v1/completions",
                {"model": model, "prompt": "Say hello.", "max_tokens": 4, "stream": True}),
        Request("status", "POST", "/v1/models/status", {"model_id": model}),
        Request("status_unknown", "POST", "/v1/models/status", {"model_id": "no-such-model"}),
        Request("unknown_model", "POST", "/v1/chat/completions", {**chat, "model": "no-such-model"}),
        Request("bad_json", "POST", "/v1/chat/completions", b'{"model": '),
        Request("wrong_type", "POST", "/v1/chat/completions", {**chat, "temperature": "hot"}),
        Request("missing_messages", "POST", "/v1/chat/completions", {"model": model}),
        Request("not_json", "POST", "/v1/chat/completions", b"hello", "text/plain"),
        Request("negative_max_tokens", "POST", "/v1/chat/completions", {**chat, "max_tokens": -1}),
        Request("zero_max_tokens", "POST", "/v1/chat/completions", {**chat, "max_tokens": 0}),
        Request("unknown_role", "POST", "/v1/chat/completions",
                {**chat, "messages": [{"role": "wizard", "content": "hi"}]}),
        Request("context_overflow", "POST", "/v1/chat/completions",
                {**chat, "messages": [{"role": "user", "content": LONG}]}),
        Request("embeddings_on_chat_model", "POST", "/v1/embeddings", {"model": model, "input": "hello"}),
        Request("image_to_text_model", "POST", "/v1/chat/completions",
                {**chat, "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}]}]}),
        Request("chat_logprobs", "POST", "/v1/chat/completions", {**chat, "logprobs": True, "top_logprobs": 2}),
        Request("chat_logprobs_stream", "POST", "/v1/chat/completions",
                {**chat, "logprobs": True, "top_logprobs": 2, "stream": True}),
        Request("completion_logprobs", "POST", "/v1/completions",
                {"model": model, "prompt": "Say hello.", "max_tokens": 4, "logprobs": 2}),
        Request("completion_logprobs_stream", "POST", "/v1/completions",
                {"model": model, "prompt": "Say hello.", "max_tokens": 4, "logprobs": 2, "stream": True}),
        Request("unload", "POST", "/v1/models/unload", {"model_id": model}),
        Request("status_unloaded", "POST", "/v1/models/status", {"model_id": model}),
        Request("reload", "POST", "/v1/models/reload", {"model_id": model}),
        Request("metrics", "GET", "/metrics"),
    ]  # fmt: skip


REQUESTS = requests  # the set, for a given model id


@dataclass(frozen=True)
class Transcript:
    name: str
    status: int
    content_type: str
    body: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "content_type": self.content_type, "body": self.body}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transcript:
        return cls(data["name"], data["status"], data["content_type"], data["body"])


def record(client: httpx.Client, request: Request) -> Transcript:
    if request.body is None:
        answer = client.request(request.method, request.path)
    else:
        raw = request.body if isinstance(request.body, bytes) else json.dumps(request.body).encode()
        answer = client.request(request.method, request.path, content=raw,
                                headers={"content-type": request.content_type})  # fmt: skip
    return Transcript(request.name, answer.status_code, answer.headers.get("content-type", ""), answer.text)


def frames(body: str) -> list[str]:
    """An SSE body's events, keep-alive comments dropped; ``[DONE]`` kept as it is."""
    events = [event for event in body.split("\n\n") if event.strip()]
    return [event.removeprefix("data: ") for event in events if not event.startswith(":")]


def shape(value: Any) -> Any:
    """Keys and value types, recursively; a list is the set of its elements' shapes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        shapes = [shape(item) for item in value]
        return sorted({json.dumps(item, sort_keys=True) for item in shapes})
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def body_shape(transcript: Transcript) -> Any:
    """The shape of a transcript's body: JSON, SSE events (each as JSON, ``[DONE]`` last), Prometheus text (the
    series names), or plain text (as it is)."""
    kind = transcript.content_type.split(";")[0].strip()
    if kind == "text/event-stream":
        *events, last = frames(transcript.body)
        return {"events": sorted({json.dumps(shape(json.loads(event)), sort_keys=True) for event in events}),
                "last": last}  # fmt: skip
    if kind == "application/json":
        return shape(json.loads(transcript.body))
    if transcript.name == "metrics":
        return sorted({line.split("{")[0].split(" ")[0] for line in transcript.body.splitlines()
                       if line.startswith("mistralrs_")})  # fmt: skip
    if transcript.status == 400:
        # axum's rejection only: serde's syntax errors name a path the emulator does not track (the proxy
        # relays the text and relies on nothing in it).
        return transcript.body.split(": ")[:1]
    return transcript.body
