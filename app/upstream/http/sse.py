"""Server-sent events from mistral.rs, reduced to the JSON payload of each ``data:`` event."""

from __future__ import annotations

import msgspec

from app.errors import UpstreamError, UpstreamProtocolError, truncate

__all__ = ["MAX_EVENT_BYTES", "SSEDecoder"]

_DONE = b"[DONE]"
# One event's bound: mistral.rs's chunks are a few hundred bytes; a stream that never sends a newline must not
# make the proxy hold (and re-scan) an unbounded line.
MAX_EVENT_BYTES = 8 * 1024 * 1024


class _ErrorBody(msgspec.Struct):
    message: str = "unknown error"


class _ErrorEvent(msgspec.Struct):
    error: _ErrorBody


_decode_error = msgspec.json.Decoder(_ErrorEvent).decode


class SSEDecoder:
    """Incremental SSE parser: ``feed`` bytes as they arrive, get back complete payloads.

    Comment lines (mistral.rs keep-alives) and named events (agentic progress) carry no chunk and are
    skipped; ``data: [DONE]`` ends the stream; an ``{"error": ...}`` event ends it too, as ``failure``, after
    the payloads that came before it in the same read. An event over ``MAX_EVENT_BYTES`` is a protocol error.

    Reads without a newline are kept as a list and joined once the line ends, so that a long line costs linear
    time, not a copy of everything so far per read.
    """

    __slots__ = ("_partial", "_partial_bytes", "_data", "_data_bytes", "_event", "done", "failure")

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # the unfinished last line
        self._partial_bytes = 0
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._event = False
        self.done = False
        self.failure: UpstreamError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if b"\n" not in data:
            self._partial.append(data)
            self._partial_bytes += len(data)
            self._check_size()
            return []
        if self._partial:
            data = b"".join((*self._partial, data))
            self._partial, self._partial_bytes = [], 0
        lines = data.split(b"\n")
        if rest := lines.pop():
            self._partial, self._partial_bytes = [rest], len(rest)
        payloads: list[bytes] = []
        for line in lines:
            if self.done:
                break
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                self._dispatch(payloads)
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
                self._data_bytes += len(value)
            elif line.startswith(b"event:"):
                self._event = line[6:].strip() not in (b"", b"message")
        self._check_size()
        return payloads

    def _check_size(self) -> None:
        if self._partial_bytes + self._data_bytes > MAX_EVENT_BYTES:
            raise UpstreamProtocolError(f"mistral.rs sent an event larger than {MAX_EVENT_BYTES // 2**20} MiB")

    def close(self) -> list[bytes]:
        """The stream ended: flush a final event without its blank line, and insist on ``[DONE]``."""
        payloads = self.feed(b"\n\n") if self._partial or self._data else []
        if not self.done:
            raise UpstreamProtocolError("mistral.rs closed the stream before it was complete")
        return payloads

    def _dispatch(self, payloads: list[bytes]) -> None:
        data, event = self._data, self._event
        self._data, self._data_bytes, self._event = [], 0, False
        if not data or event or self.done:
            return
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        if payload == _DONE:
            self.done = True
        elif payload.startswith(b'{"error"'):
            self.failure = UpstreamError(f"mistral.rs: {_error_message(payload)}")
            self.done = True
        else:
            payloads.append(payload)


def _error_message(payload: bytes) -> str:
    try:
        return truncate(_decode_error(payload).error.message)
    except msgspec.ValidationError:
        return "unknown error"
    except msgspec.DecodeError:
        return "malformed error event"
