from __future__ import annotations

import pytest

from app.errors import UpstreamError, UpstreamProtocolError
from app.upstream.http.sse import MAX_EVENT_BYTES, SSEDecoder

CHUNK = b'{"id":"0","choices":[]}'


def _feed_all(decoder: SSEDecoder, parts: list[bytes]) -> list[bytes]:
    return [payload for part in parts for payload in decoder.feed(part)]


def test_payloads_split_anywhere_are_reassembled() -> None:
    stream = b"data: " + CHUNK + b"\n\ndata: " + CHUNK + b"\n\ndata: [DONE]\n\n"
    for size in (1, 2, 7, len(stream)):
        decoder = SSEDecoder()
        parts = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert _feed_all(decoder, parts) == [CHUNK, CHUNK]
        assert decoder.done
        assert decoder.close() == []


def test_keep_alive_comments_named_events_and_crlf_are_handled() -> None:
    decoder = SSEDecoder()
    stream = (
        b':\n\nevent: agentic_tool_call_progress\r\ndata: {"step":1}\r\n\r\ndata:' + CHUNK + b"\r\n\r\ndata: [DONE]\n\n"
    )
    assert decoder.feed(stream) == [CHUNK]
    assert decoder.done


def test_multi_line_data_is_joined() -> None:
    assert SSEDecoder().feed(b'data: {"a":\ndata: 1}\n\n') == [b'{"a":\n1}']


def test_error_event_ends_the_stream_after_the_chunks_before_it() -> None:
    event = b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n'
    decoder = SSEDecoder()
    assert decoder.feed(b"data: " + CHUNK + b"\n\n" + event + b"data: [DONE]\n\n") == [CHUNK]
    assert decoder.done
    assert isinstance(decoder.failure, UpstreamError) and decoder.failure.message == "mistral.rs: boom"


def test_stream_without_done_is_a_protocol_error() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: " + CHUNK + b"\n\ndata: " + CHUNK) == [CHUNK]
    with pytest.raises(UpstreamProtocolError, match="closed the stream before it was complete"):
        decoder.close()


def test_last_event_without_blank_line_is_flushed_at_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: " + CHUNK + b"\n\ndata: [DONE]") == [CHUNK]
    assert decoder.close() == []
    assert decoder.done


def test_an_event_up_to_the_bound_is_reassembled_from_small_reads() -> None:
    payload = b'{"id":"' + b"x" * (MAX_EVENT_BYTES - 64) + b'"}'
    stream = b"data: " + payload + b"\n\ndata: [DONE]\n\n"
    decoder = SSEDecoder()
    assert _feed_all(decoder, [stream[i : i + 65536] for i in range(0, len(stream), 65536)]) == [payload]
    assert decoder.done


@pytest.mark.parametrize("newlines", [False, True], ids=["one endless line", "endless multi-line data"])
def test_an_event_over_the_bound_is_a_protocol_error(newlines: bool) -> None:
    decoder = SSEDecoder()
    piece = b"data: " + b"x" * 65530 + b"\n" if newlines else b"x" * 65536
    fed = 0
    with pytest.raises(UpstreamProtocolError, match="^mistral.rs sent an event larger than 8 MiB$"):
        while fed <= 2 * MAX_EVENT_BYTES:
            fed += len(piece)
            decoder.feed(piece)
    assert MAX_EVENT_BYTES < fed <= MAX_EVENT_BYTES + 2 * len(piece)  # (framing bytes do not count)
