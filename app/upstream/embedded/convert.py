"""OpenAI-shaped request bodies → ``mistralrs`` request objects, and engine responses → mistral.rs's JSON.

The embedded engine answers with the same bytes a mistral.rs server would send, so everything above the
upstream interface (translation, pass-through, telemetry) is shared with the HTTP upstream.
"""

from __future__ import annotations

import json
from typing import Any

import mistralrs
import msgspec

from app.errors import InvalidRequest
from app.upstream.wire import ROLES

__all__ = [
    "chat_request",
    "chat_response",
    "chunk_payload",
    "completion_payload",
    "completion_request",
    "embedding_request",
]

_SAMPLING = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty")
_encode = msgspec.json.Encoder().encode


def _messages(messages: Any) -> list[dict[str, Any]]:
    """Validate here: the engine panics (a ``BaseException``) on a message without content."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    checked = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequest("each message needs a role: system, user, assistant or tool")
        content = message.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str | list):
            raise InvalidRequest("message content must be a string or a list of parts")
        checked.append({**message, "content": content if isinstance(content, str) else _text_of(content)})
    return checked


def _text_of(parts: list[Any]) -> str:
    """The engine runs text models only, whose templates want a string: the text parts, joined; images are
    dropped, as Ollama drops them for a model without vision."""
    texts = [part.get("text") for part in parts if isinstance(part, dict) and part.get("type") == "text"]
    return "\n".join(text for text in texts if isinstance(text, str))


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    fields = {key: body[key] for key in _SAMPLING if body.get(key) is not None}
    if "max_tokens" not in fields and body.get("max_completion_tokens") is not None:
        fields["max_tokens"] = body["max_completion_tokens"]
    if body.get("repetition_penalty") is not None:
        fields["repetition_penalty"] = body["repetition_penalty"]
    stop = body.get("stop")
    if stop:
        fields["stop_seqs"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(fields.get("max_tokens"), int) and fields["max_tokens"] < 1:
        raise InvalidRequest("max_tokens must be at least 1")
    if body.get("truncate_sequence") is True:  # a prompt longer than the context is cut to fit, as a server does
        fields["truncate_sequence"] = True
    return fields


def _grammar(body: dict[str, Any]) -> dict[str, Any]:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        return {"grammar": json.dumps({"type": "object"}), "grammar_type": "json_schema"}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema", {"type": "object"})
        return {"grammar": json.dumps(schema), "grammar_type": "json_schema"}
    return {}


def chat_request(body: dict[str, Any], model: str) -> Any:
    extra: dict[str, Any] = {}
    if body.get("tools"):
        extra["tool_schemas"] = [json.dumps(tool) for tool in body["tools"]]
    for key in ("enable_thinking", "reasoning_effort", "top_logprobs"):
        if body.get(key) is not None:
            extra[key] = body[key]
    if body.get("logprobs"):
        extra["logprobs"] = True
    return mistralrs.ChatCompletionRequest(
        messages=_messages(body.get("messages")),
        model=model,
        stream=True,
        **_sampling(body),
        **_grammar(body),
        **extra,
    )


def completion_request(body: dict[str, Any], model: str) -> Any:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt must be a string")
    if body.get("logprobs") is not None:
        # The Python binding's CompletionRequest has no logprobs (mistralrs 0.9.5); chat requests do.
        raise InvalidRequest("the in-process engine returns logprobs for templated prompts only, not raw or suffix")
    suffix = {"suffix": body["suffix"]} if body.get("suffix") else {}
    return mistralrs.CompletionRequest(prompt=prompt, model=model, **_sampling(body), **_grammar(body), **suffix)


def embedding_request(body: dict[str, Any]) -> Any:
    inputs = body.get("input")
    if not isinstance(inputs, str | list):
        raise InvalidRequest("input must be a string or a list of strings")
    return mistralrs.EmbeddingRequest(input=inputs)


def _usage(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.total_tokens,
        "avg_tok_per_sec": usage.avg_tok_per_sec,
        "avg_prompt_tok_per_sec": usage.avg_prompt_tok_per_sec,
        "avg_compl_tok_per_sec": usage.avg_compl_tok_per_sec,
        "total_time_sec": usage.total_time_sec,
        "total_prompt_time_sec": usage.total_prompt_time_sec,
        "total_completion_time_sec": usage.total_completion_time_sec,
    }


def _tool_calls(calls: Any) -> list[dict[str, Any]] | None:
    if not calls:
        return None
    return [
        {"index": call.index, "id": call.id, "type": "function",
         "function": {"name": call.function.name, "arguments": call.function.arguments}}
        for call in calls
    ]  # fmt: skip


def _delta(delta: Any) -> dict[str, Any]:
    converted = {"content": delta.content, "role": delta.role, "tool_calls": _tool_calls(delta.tool_calls)}
    if delta.reasoning_content is not None:
        converted["reasoning_content"] = delta.reasoning_content
    return converted


def _logprob(logprob: Any) -> dict[str, Any]:
    top = [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes} for t in logprob.top_logprobs]
    return {"token": logprob.token, "logprob": logprob.logprob, "bytes": logprob.bytes, "top_logprobs": top}


def chunk_payload(chunk: Any, model: str) -> bytes:
    """A streamed chat chunk, as mistral.rs's server writes it after ``data: ``."""
    choices = [
        {"finish_reason": c.finish_reason, "index": c.index, "delta": _delta(c.delta),
         "logprobs": _logprob(c.logprobs) if c.logprobs is not None else None}
        for c in chunk.choices
    ]  # fmt: skip
    return _encode(
        {"id": chunk.id, "choices": choices, "created": chunk.created, "model": model,
         "system_fingerprint": chunk.system_fingerprint, "object": "chat.completion.chunk",
         "usage": _usage(chunk.usage)}
    )  # fmt: skip


def completion_payload(response: Any, model: str) -> bytes:
    """A whole text completion; it also serves as the one chunk of a "stream" (with its usage)."""
    choices = [
        {"text": c.text, "index": c.index, "logprobs": None, "finish_reason": c.finish_reason} for c in response.choices
    ]
    return _encode(
        {"id": response.id, "choices": choices, "created": response.created, "model": model,
         "system_fingerprint": response.system_fingerprint, "object": "text_completion",
         "usage": _usage(response.usage)}
    )  # fmt: skip


def chat_response(chunks: list[dict[str, Any]], model: str) -> bytes:
    """The non-streamed answer, joined from the streamed chunks the way the engine would have built it."""
    content: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[Any] = []
    logprobs: list[dict[str, Any]] = []
    finish_reason = None
    for chunk in chunks:
        for choice in chunk["choices"][:1]:
            delta = choice["delta"]
            if choice["logprobs"] is not None:
                logprobs.append(choice["logprobs"])
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            tool_calls.extend(delta.get("tool_calls") or [])
            finish_reason = choice["finish_reason"] or finish_reason
    message: dict[str, Any] = {"content": "".join(content) if not tool_calls else None, "role": "assistant",
                               "tool_calls": tool_calls or None}  # fmt: skip
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    last = chunks[-1] if chunks else {"id": "", "created": 0, "usage": None}
    choice = {"finish_reason": finish_reason or "stop", "index": 0, "message": message,
              "logprobs": {"content": logprobs} if logprobs else None}  # fmt: skip
    return _encode(
        {"id": last["id"], "choices": [choice], "created": last["created"], "model": model,
         "system_fingerprint": "local", "object": "chat.completion", "usage": last["usage"]}
    )  # fmt: skip
