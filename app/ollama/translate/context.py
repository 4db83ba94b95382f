"""Generate's ``context``: the conversation so far, handed to the client and back, so the server keeps nothing.

Ollama's context is the conversation's token ids, which mistral.rs does not expose. Clients treat it as opaque
integers to send back with the next prompt, so here it is the conversation itself: its messages as compact JSON,
one integer per character. A context this server did not make is refused with a clear 400.
"""

from __future__ import annotations

from typing import Any

import msgspec

from app.errors import InvalidRequest

__all__ = ["context_messages", "conversation_context"]

_encode = msgspec.json.Encoder().encode


class _Message(msgspec.Struct):
    role: str
    content: str


_decode = msgspec.json.Decoder(list[_Message]).decode


def conversation_context(messages: list[dict[str, Any]], answer: str) -> list[int]:
    """The context to return: the conversation's user and assistant turns, then this answer."""
    turns = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] in ("user", "assistant")
             and isinstance(m.get("content"), str)]  # fmt: skip
    text = _encode([*turns, {"role": "assistant", "content": answer}]).decode()
    return [ord(character) for character in text]


def context_messages(context: list[int]) -> list[dict[str, Any]]:
    """The earlier turns a returned context holds."""
    try:
        turns = _decode("".join(map(chr, context)))
    except (ValueError, OverflowError, msgspec.MsgspecError):
        raise InvalidRequest(
            "context was not returned by this server: send the earlier turns as /api/chat messages"
        ) from None
    return [{"role": turn.role, "content": turn.content} for turn in turns if turn.role in ("user", "assistant")]
