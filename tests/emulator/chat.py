"""The bodies of `/v1/chat/completions` and `/v1/completions`: a whole answer, or a stream's payloads (one per SSE
data event, the in-band error event included)."""

from __future__ import annotations

from typing import Any

from tests.emulator.replies import Reply, _Plan

FINGERPRINT = "local"


def _delta(
    content: str | None, reasoning: str | None = None, calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": content, "role": "assistant", "tool_calls": calls}
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return delta


def _envelope(head: dict[str, Any], choices: list[Any], obj: str) -> dict[str, Any]:
    return {
        "id": head["id"],
        "choices": choices,
        "created": head["created"],
        "model": head["model"],
        "system_fingerprint": FINGERPRINT,
        "object": obj,
    }


def _chat_response(head: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    content = None if plan.tool_calls else "".join(plan.content)
    reasoning = None if plan.reasoning is None else "".join(plan.reasoning)
    message = _delta(content, reasoning, plan.tool_calls)
    choice = {"finish_reason": plan.finish_reason, "index": 0, "message": message, "logprobs": plan.logprobs()}
    return {**_envelope(head, [choice], "chat.completion"), "usage": plan.usage}


def _chat_chunk(
    head: dict[str, Any],
    delta: dict[str, Any],
    finish: str | None,
    usage: dict[str, Any] | None,
    logprob: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = {"finish_reason": finish, "index": 0, "delta": delta, "logprobs": logprob}
    return {**_envelope(head, [choice], "chat.completion.chunk"), "usage": usage}


def _error_event(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def _chat_payloads(head: dict[str, Any], plan: _Plan, reply: Reply) -> list[dict[str, Any]]:
    tokens = [*(plan.reasoning or []), *plan.content]
    pieces = [_delta(None, t) for t in plan.reasoning or []] + [_delta(t) for t in plan.content]
    logprobs = [plan.logprob(i, t) for i, t in enumerate(tokens)]
    if reply.error_after is not None:
        partial = [_chat_chunk(head, d, None, None, lp) for d, lp in zip(pieces, logprobs, strict=True)][
            : reply.error_after
        ]
        return [*partial, _error_event(reply.error_message)]
    last_logprob = None
    if plan.tool_calls:
        last = _delta(None, None, plan.tool_calls)
    elif pieces:
        last, last_logprob = pieces.pop(), logprobs.pop()
    else:
        last = _delta("")
    body = [_chat_chunk(head, d, None, None, lp) for d, lp in zip(pieces, logprobs, strict=True)]
    return [*body, _chat_chunk(head, last, plan.finish_reason, plan.usage, last_logprob)]


def _completion_response(head: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    text = "".join(plan.content)
    choice = {"finish_reason": plan.finish_reason, "index": 0, "text": text, "logprobs": plan.logprobs()}
    return {**_envelope(head, [choice], "text_completion"), "usage": plan.usage}


def _completion_chunk(
    head: dict[str, Any], text: str, finish: str | None, logprob: dict[str, Any] | None = None
) -> dict[str, Any]:
    choice = {"text": text, "index": 0, "logprobs": logprob, "finish_reason": finish}
    return _envelope(head, [choice], "text_completion")


def _completion_payloads(head: dict[str, Any], plan: _Plan, reply: Reply) -> list[dict[str, Any]]:
    pieces = list(plan.content)
    logprobs = [plan.logprob(i, t) for i, t in enumerate(pieces)]
    if reply.error_after is not None:
        partial = [_completion_chunk(head, t, None, lp) for t, lp in zip(pieces, logprobs, strict=True)][
            : reply.error_after
        ]
        return [*partial, _error_event(reply.error_message)]
    last, last_logprob = (pieces.pop(), logprobs.pop()) if pieces else ("", None)
    body = [_completion_chunk(head, t, None, lp) for t, lp in zip(pieces, logprobs, strict=True)]
    return [*body, _completion_chunk(head, last, plan.finish_reason, last_logprob)]
