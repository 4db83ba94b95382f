"""mistral.rs's OpenAI answers in the shape Ollama gives its own (``openai/openai.go``): the model as the client named
it, no null ``logprobs`` or message fields, ``reasoning`` for mistral.rs's ``reasoning_content``, and only OpenAI's
three counts in ``usage`` (mistral.rs adds its throughput and timings)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ollama_shaped"]

_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def ollama_shaped(payload: bytes, model: str) -> bytes:
    """One answer or stream chunk, reshaped; anything that is not an OpenAI object goes out as it came."""
    try:
        answer = _decode(payload)
    except msgspec.DecodeError:
        return payload
    if not isinstance(answer, dict):
        return payload
    if "model" in answer:
        answer["model"] = model
    for choice in answer.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if "logprobs" in choice and choice["logprobs"] is None:
            del choice["logprobs"]
        for key in ("message", "delta"):
            if isinstance(message := choice.get(key), dict):
                choice[key] = _message(message)
    usage = answer.get("usage")
    if isinstance(usage, dict):
        answer["usage"] = {key: usage[key] for key in _USAGE if key in usage}
    elif "usage" in answer and usage is None:
        del answer["usage"]
    return _encode(answer)


def _message(message: dict[str, Any]) -> dict[str, Any]:
    shaped = {key: value for key, value in message.items() if value is not None or key == "content"}
    if "reasoning_content" in shaped:
        shaped["reasoning"] = shaped.pop("reasoning_content")
    return shaped
