"""What mistral.rs's HTTP layer (axum and serde) puts on the wire: compact JSON, f32 printed as serde prints it,
and the rejections of a body that is not JSON or does not fit its request struct."""

from __future__ import annotations

import json
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

# Python json error text -> serde_json error text (the offending character's column is kept).
_SERDE_SYNTAX = (
    ("Expecting property name enclosed in double quotes", "key must be a string"),
    ("Extra data", "trailing characters"),
    ("Expecting ':' delimiter", "expected `:`"),
    ("Expecting ',' delimiter", "expected `,` or `}`"),
)


class _Reject(Exception):
    """Carries a finished error response out of a handler."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _json(obj: Any, status: int = 200) -> Response:
    return Response(_dumps(obj), status_code=status, media_type="application/json")


def _text(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")


def _error(status: int, message: str) -> _Reject:
    return _Reject(_json({"message": message}, status))


def _raw(status: int, body: bytes) -> Response:
    """`body` as is; JSON content-type only when it parses as JSON."""
    try:
        json.loads(body)
    except ValueError:
        return Response(body, status_code=status, media_type="text/plain; charset=utf-8")
    return Response(body, status_code=status, media_type="application/json")


def _to_f32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _f32(value: float) -> float:
    """Round to f32 and return the shortest decimal that maps back to it, as serde prints f32."""
    exact = _to_f32(value)
    for digits in range(1, 10):
        candidate = float(f"{exact:.{digits}g}")
        if _to_f32(candidate) == exact:
            return candidate
    return exact


def _where(raw: bytes, index: int) -> str:
    line = raw.count(b"\n", 0, index) + 1
    column = index - (raw.rfind(b"\n", 0, index) + 1)
    return f"line {line} column {column}"


def _syntax_message(raw: bytes, exc: ValueError) -> str:
    if not isinstance(exc, json.JSONDecodeError):
        return "invalid unicode code point at line 1 column 1"
    index = len(exc.doc[: exc.pos].encode())
    if exc.msg.startswith("Unterminated string"):
        return f"EOF while parsing a string at {_where(raw, len(raw))}"
    if index >= len(raw.rstrip()):
        what = "an object" if raw.lstrip().startswith(b"{") else "a value"
        return f"EOF while parsing {what} at {_where(raw, len(raw))}"
    text = next((serde for py, serde in _SERDE_SYNTAX if exc.msg.startswith(py)), "expected value")
    return f"{text} at {_where(raw, index + 1)}"


def _serde_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return f'string "{value}"'
    return "sequence" if isinstance(value, list) else "unit value"


# Typed request fields, as serde checks them (in the order they appear in the body).
_F64 = ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty")
_USIZE = ("max_tokens", "max_completion_tokens", "top_k", "n")


def _field_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if name in _F64 and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"invalid type: {_serde_kind(value)}, expected f64"
    if name in _USIZE:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"invalid value: {_serde_kind(value)}, expected usize" if value < 0 else None
        return f"invalid type: {_serde_kind(value)}, expected usize"
    return None


def _value_end(raw: bytes, name: str) -> int:
    """Where serde stops reading a top-level field's value: just after it."""
    text = raw.decode("utf-8", "replace")
    key = text.find(json.dumps(name))
    start = text.index(":", key) + 1
    start += len(text[start:]) - len(text[start:].lstrip())
    _, end = json.JSONDecoder().raw_decode(text, start)
    return len(text[:end].encode())


def _shape_problem(raw: bytes, body: Any, struct_name: str, required: tuple[str, ...]) -> str | None:
    end = _where(raw, len(raw.rstrip()))
    if not isinstance(body, dict):
        return f"invalid type: {_serde_kind(body)}, expected struct {struct_name} at {end}"
    for name, value in body.items():
        if (problem := _field_problem(name, value)) is not None:
            return f"{name}: {problem} at {_where(raw, _value_end(raw, name))}"
    missing = next((name for name in required if name not in body), None)
    return None if missing is None else f"missing field `{missing}` at {end}"


def _is_json_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = mime.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


async def _read_json(request: Request, struct_name: str, required: tuple[str, ...]) -> dict[str, Any]:
    """Mirror axum 0.8's `Json` extractor: 415, then 400 on syntax, then 422 on shape."""
    if not _is_json_type(request.headers.get("content-type")):
        raise _Reject(_text("Expected request with `Content-Type: application/json`", 415))
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError as exc:
        message = f"Failed to parse the request body as JSON: {_syntax_message(raw, exc)}"
        raise _Reject(_text(message, 400)) from None
    problem = _shape_problem(raw, body, struct_name, required)
    if problem is not None:
        message = f"Failed to deserialize the JSON body into the target type: {problem}"
        raise _Reject(_text(message, 422))
    result: dict[str, Any] = body
    return result
