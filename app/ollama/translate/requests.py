"""Ollama ``/api/chat`` and ``/api/generate`` requests → mistral.rs request bodies.

| Ollama                         | mistral.rs                                                         |
|--------------------------------|--------------------------------------------------------------------|
| `model` (name, alias)          | `model` (the id from `/v1/models`)                                 |
| `messages[]`                   | `messages[]`; `images` → `image_url` parts                         |
| `messages[].tool_calls`        | `tool_calls` with `arguments` as a JSON string, and an id           |
| `messages[].tool_name`         | `tool_call_id` (of the matching call) + `name`                      |
| generate `system` + `prompt`   | chat `messages` (system, user)                                     |
| generate `raw` or `suffix`     | `/v1/completions` `prompt` (+ `suffix`), no chat template         |
| `tools`                        | `tools`; left out for a model whose template renders none           |
| `format: "json"` / schema      | `response_format` `json_object` / `json_schema`                    |
| `think: bool` / level          | `enable_thinking` / + `reasoning_effort`                           |
| `logprobs` + `top_logprobs`    | `logprobs` + `top_logprobs` (chat), `logprobs: n` (completions)   |
| `options` not given            | the model's own (`/api/show` `parameters`), else Ollama's defaults |
| `options.num_predict` > 0      | `max_tokens`                                                       |
| `options.repeat_penalty`       | `repetition_penalty`                                               |
| `options.temperature, top_p, top_k, min_p, stop, presence_penalty, frequency_penalty, seed` | same names |
| `context` (from an earlier answer) | the earlier turns, as `messages` (see `context.py`) |
| `stream` (default true)        | `stream`; a single answer's time is split by mistral.rs's prefill/decode ratio |

Unknown and legacy options (`mirostat`, `tfs_z`, `num_ctx`, …) are ignored; `template` and `context` have no
mistral.rs equivalent and are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import InvalidRequest
from app.models.names import full_name
from app.ollama import ChatRequest, GenerateRequest
from app.ollama.translate.context import context_messages
from app.ollama.translate.messages import messages_to_openai, tools_to_openai, user_content
from app.ollama.translate.options import format_to_openai, options_to_openai, think_to_openai
from app.ollama.translate.show import capabilities
from app.upstream import Route
from app.upstream.wire import ModelCard

__all__ = [
    "chat_request_to_openai",
    "check_thinking",
    "check_tools",
    "check_top_logprobs",
    "generate_conversation",
    "generate_request_to_openai",
    "requested_top_logprobs",
]


def chat_request_to_openai(
    request: ChatRequest, model_id: str, defaults: Mapping[str, float | list[str]]
) -> dict[str, Any]:
    """``defaults``: the options the model samples with when the request gives none (``model_options``)."""
    tools = tools_to_openai(request.tools)
    return {
        "model": model_id,
        "messages": messages_to_openai(request.messages or []),
        "stream": request.stream is not False,
        **tools,
        **format_to_openai(request.format),
        **think_to_openai(request.think),
        **options_to_openai(request.options, defaults),
        **_logprobs_to_openai(request, "chat"),
        **_truncation(request),
    }


def _truncation(request: ChatRequest | GenerateRequest) -> dict[str, Any]:
    """Ollama cuts a prompt longer than the context unless ``truncate`` is false (then it refuses it, as mistral.rs
    does by default). mistral.rs cuts by tokens from the start of the prompt, where Ollama drops whole messages
    (keeping the system prompt); ``shift`` cannot be had: at a full context both engines end the answer (length)."""
    return {} if request.truncate is False else {"truncate_sequence": True}


def generate_request_to_openai(
    request: GenerateRequest, model_id: str, defaults: Mapping[str, float | list[str]]
) -> tuple[Route, dict[str, Any]]:
    common = {
        "model": model_id,
        "stream": request.stream is not False,
        **format_to_openai(request.format),
        **think_to_openai(request.think),
        **options_to_openai(request.options, defaults),
        **_truncation(request),
    }
    if request.raw:
        if request.system or request.template or request.context:
            raise InvalidRequest("raw mode does not support template, system, or context")
        if request.images:
            raise InvalidRequest("raw mode does not support images")
    if request.raw or request.suffix:
        suffix = {"suffix": request.suffix} if request.suffix else {}
        logprobs = _logprobs_to_openai(request, "completion")
        return "completion", {**common, "prompt": request.prompt or "", **suffix, **logprobs}
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages += context_messages(request.context) if request.context else []
    messages.append({"role": "user", "content": user_content(request.prompt or "", request.images)})
    return "chat", {**common, "messages": messages, **_logprobs_to_openai(request, "chat")}


def requested_top_logprobs(request: ChatRequest | GenerateRequest) -> int | None:
    """None unless the client asked for log probabilities; else how many alternatives it wants per token."""
    return (request.top_logprobs or 0) if request.logprobs else None


def _logprobs_to_openai(request: ChatRequest | GenerateRequest, route: Route) -> dict[str, Any]:
    """mistral.rs returns one alternative unless told otherwise: ask for exactly what Ollama would return."""
    if (top := requested_top_logprobs(request)) is None:
        return {}
    return {"logprobs": top} if route == "completion" else {"logprobs": True, "top_logprobs": top}


def check_top_logprobs(top: int | None) -> None:
    """Ollama checks this first, before the model name."""
    if top is not None and not 0 <= top <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")


def generate_conversation(request: GenerateRequest) -> list[dict[str, Any]] | None:
    """The turns a templated generate's ``context`` will carry (none in raw mode, as Ollama)."""
    if request.raw or request.suffix:
        return None
    earlier = context_messages(request.context) if request.context else []
    return [*earlier, {"role": "user", "content": request.prompt or ""}]


def check_thinking(think: bool | str | None, name: str, model_id: str, card: ModelCard) -> None:
    """Ollama's 400 for ``think`` on a model that cannot think (``think: false`` is always fine)."""
    think_to_openai(think)  # an invalid value is its own 400 first, as in Ollama
    if think not in (None, False) and "thinking" not in capabilities(model_id, card):
        raise InvalidRequest(f'"{name}" does not support thinking')


def check_tools(tools: list[Any] | None, name: str, card: ModelCard) -> None:
    """Ollama's 400 for tools given to a model whose chat template cannot render them. A mistral.rs server shows
    no template: there they pass through, for the server to render or refuse."""
    if tools and card.tools is False:
        raise InvalidRequest(f"{full_name(name)} does not support tools")
