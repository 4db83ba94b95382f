"""The chunk translator on mistral.rs's own bytes (reference/mistralrs-server.md §2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from app.errors import UpstreamProtocolError
from app.ollama.translate.stream import OllamaStream, decode_chunks, rfc3339_utc, to_ollama
from otel.clock import Clock

HEAD = b'{"id":"8","choices":[{"finish_reason":'
TAIL = b'"created":1761475201,"model":"Qwen/Qwen3-4B","system_fingerprint":"local","object":"chat.completion.chunk",'
USAGE = (
    b'"usage":{"completion_tokens":12,"prompt_tokens":15,"total_tokens":27,"avg_tok_per_sec":93.75,'
    b'"avg_prompt_tok_per_sec":1500.0,"avg_compl_tok_per_sec":102.56,"total_time_sec":0.288,'
    b'"total_prompt_time_sec":0.01,"total_completion_time_sec":0.117}}'
)


def _chunk(content: str, finish: str | None = None, tool_calls: bytes = b"null") -> bytes:
    reason = b"null" if finish is None else f'"{finish}"'.encode()
    delta = b'{"content":' + msgspec.json.encode(content) + b',"role":"assistant","tool_calls":' + tool_calls + b"}"
    usage = USAGE if finish else b'"usage":null}'
    return HEAD + reason + b',"index":0,"delta":' + delta + b',"logprobs":null}],' + TAIL + usage


async def _bursts(
    payloads: list[bytes], kind: str = "chat", size: int = 1, top_logprobs: int | None = None
) -> list[list[dict[str, object]]]:
    clock = Clock()

    async def source() -> AsyncIterator[list[bytes]]:
        for start in range(0, len(payloads), size):
            clock.mark()  # what the GenAI observer does as tokens arrive
            yield payloads[start : start + size]

    stream = OllamaStream("qwen3", kind, clock, top_logprobs=top_logprobs)  # type: ignore[arg-type]
    translated = to_ollama(decode_chunks(source()), stream)
    return [[msgspec.to_builtins(reply) for reply in replies] async for replies in translated]


async def _replies(
    payloads: list[bytes], kind: str = "chat", top_logprobs: int | None = None
) -> list[dict[str, object]]:
    return [reply for replies in await _bursts(payloads, kind, top_logprobs=top_logprobs) for reply in replies]


def test_text_chunks_then_one_final_object() -> None:
    replies = asyncio.run(_replies([_chunk("The"), _chunk(" sky"), _chunk(".", "stop")]))
    assert [r["message"] for r in replies] == [
        {"role": "assistant", "content": "The"},
        {"role": "assistant", "content": " sky"},
        {"role": "assistant", "content": "."},
        {"role": "assistant", "content": ""},
    ]
    final = replies[-1]
    assert (final["done"], final["done_reason"], final["prompt_eval_count"], final["eval_count"]) == (
        True,
        "stop",
        15,
        12,
    )
    assert all(isinstance(final[k], int) and final[k] >= 0 for k in ("total_duration", "eval_duration"))


def test_a_burst_of_chunks_is_translated_together_and_an_empty_one_is_skipped() -> None:
    role_only = (
        HEAD + b'null,"index":0,"delta":{"content":null,"role":"assistant","tool_calls":null},"logprobs":null}],'
    )
    role_only += TAIL + b'"usage":null}'
    bursts = asyncio.run(_bursts([role_only, role_only, _chunk("a"), _chunk("b"), _chunk("c", "stop")], size=2))
    contents = [[r["message"]["content"] for r in replies] for replies in bursts]  # type: ignore[index]
    assert contents == [["a", "b"], ["c"], [""]]
    assert [[r["done"] for r in replies] for replies in bursts] == [[False, False], [False], [True]]


def test_tool_calls_are_sent_whole_with_object_arguments() -> None:
    calls = b'[{"index":0,"id":"call-1","type":"function","function":{"name":"f","arguments":"{\\"x\\": 1}"}}]'
    replies = asyncio.run(_replies([_chunk("", "tool_calls", calls)]))
    assert replies[0]["message"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"index": 0, "name": "f", "arguments": {"x": 1}}, "id": "call-1"}],
    }
    assert replies[-1]["done_reason"] == "stop"


def test_incremental_tool_call_deltas_are_joined() -> None:
    first = b'[{"index":0,"id":"c","function":{"name":"f","arguments":"{\\"x\\""}}]'
    second = b'[{"index":0,"function":{"arguments":": 2}"}}]'
    replies = asyncio.run(_replies([_chunk("", None, first), _chunk("", "tool_calls", second)]))
    assert replies[0]["message"]["tool_calls"][0]["function"]["arguments"] == {"x": 2}  # type: ignore[index]


def test_generate_shape_and_length_reason() -> None:
    replies = asyncio.run(_replies([_chunk("a"), _chunk("b", "length")], kind="generate"))
    assert [r["response"] for r in replies] == ["a", "b", ""]
    assert replies[-1]["done_reason"] == "length"


@pytest.mark.parametrize("payload", [b"{", b'{"choices":5}', b'{"choices":[{"delta":{"content":7}}]}'])
def test_malformed_chunks_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(UpstreamProtocolError, match="malformed stream chunk"):
        asyncio.run(_replies([payload]))


def test_rfc3339_trims_trailing_zeros_like_go() -> None:
    assert rfc3339_utc(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert rfc3339_utc(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def _with_logprob(payload: bytes, token: str, logprob: float, top: bytes = b"[]") -> bytes:
    entry = b'{"token":' + msgspec.json.encode(token) + b',"logprob":' + str(logprob).encode()
    entry += b',"bytes":' + msgspec.json.encode(list(token.encode())) + b',"top_logprobs":' + top + b"}"
    return payload.replace(b'"logprobs":null', b'"logprobs":' + entry)


def test_a_token_held_back_by_the_engine_still_sends_its_logprob() -> None:
    """mistral.rs sends a chunk with empty text for the first byte of a split character; Ollama sends its
    logprob anyway, in a line with empty content."""
    top = b'[{"token":40,"logprob":-0.5,"bytes":"\\u00e9"},{"token":41,"logprob":-2.0,"bytes":""}]'
    payloads = [_with_logprob(_chunk(""), "\ufffd", -0.5, top), _with_logprob(_chunk("é", "stop"), "é", -0.25)]
    replies = asyncio.run(_replies(payloads, top_logprobs=2))
    assert [(r["message"]["content"], r["done"]) for r in replies] == [("", False), ("é", False), ("", True)]  # type: ignore[index]
    assert replies[0]["logprobs"] == [{
        "token": "\ufffd", "logprob": -0.5, "bytes": [239, 191, 189],
        "top_logprobs": [{"token": "é", "logprob": -0.5, "bytes": [195, 169]}, {"token": "", "logprob": -2.0}],
    }]  # fmt: skip
    assert replies[1]["logprobs"] == [{"token": "é", "logprob": -0.25, "bytes": [195, 169]}]
    assert "logprobs" not in replies[2]


def test_logprobs_the_client_did_not_ask_for_are_dropped() -> None:
    replies = asyncio.run(_replies([_with_logprob(_chunk("a"), "a", -0.1), _with_logprob(_chunk("", "stop"), "", -1)]))
    assert [r["message"]["content"] for r in replies] == ["a", ""]  # type: ignore[index]
    assert all("logprobs" not in r for r in replies)
