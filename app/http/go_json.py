"""Where a request body stops being JSON, told as Ollama tells it.

Ollama reads a body with Go's ``encoding/json`` Decoder (through gin), so a client sees Go's words for a syntax error
(``invalid character 'n' looking for beginning of object key string``, ``unexpected EOF``), and whatever follows
the first complete value is never read. msgspec finds the same errors in C; this scanner only runs once it has
failed, to say where as Go would, and reads each byte once: runs of string, digit and space bytes are skipped by
single-class patterns, which cannot backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Scan", "scan"]

_SPACE = re.compile(rb"[ \t\r\n]*")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')
_DIGITS = re.compile(rb"[0-9]*")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'bfnrt\\/"')
_LITERALS = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}
_NAMED = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r"}
_MAX_DEPTH = 10000  # Go's maxNestingDepth


@dataclass(frozen=True)
class Scan:
    """``error`` is Go's message, or None when the first value is whole; ``end`` is where that value ends."""

    error: str | None
    end: int


class _Stop(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _quote(byte: int) -> str:
    """Go's quoteChar: the byte as the rune of the same number, in strconv.Quote's escapes."""
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    if byte == 0x5C:
        return "'\\\\'"
    if byte in _NAMED:
        return f"'\\{_NAMED[byte]}'"
    if byte < 0x20 or byte == 0x7F:
        return f"'\\x{byte:02x}'"
    if 0x80 <= byte <= 0xA0 or byte == 0xAD:
        return f"'\\u{byte:04x}'"
    return f"'{chr(byte)}'"


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise _Stop("unexpected EOF")
        return self.data[self.at]

    def fail(self, context: str) -> _Stop:
        return _Stop(f"invalid character {_quote(self.data[self.at])} {context}")

    def space(self) -> None:
        self.at = _SPACE.match(self.data, self.at).end()  # type: ignore[union-attr]

    def value(self) -> None:
        """One whole value, nested ones included, without recursion: Go allows 10,000 levels."""
        open_: list[int] = []
        while True:
            if self.start(open_):
                continue
            while open_:
                self.space()
                separator = self.byte()
                if separator == 0x2C:  # ,
                    self.at += 1
                    if open_[-1] == 0x7B:
                        self.key()
                    break
                if separator == open_[-1] + 2:  # } or ]
                    self.at += 1
                    open_.pop()
                    continue
                raise self.fail("after object key:value pair" if open_[-1] == 0x7B else "after array element")
            else:
                return

    def start(self, open_: list[int]) -> bool:
        """Reads a value up to its first element, True if that is yet to come, or the whole value."""
        self.space()
        first = self.byte()
        if first in (0x7B, 0x5B):  # { [
            if len(open_) >= _MAX_DEPTH:
                raise self.fail("exceeded max depth")
            self.at += 1
            self.space()
            if self.byte() == first + 2:
                self.at += 1
                return False
            open_.append(first)
            if first == 0x7B:
                self.key()
            return True
        if first == 0x22:
            self.string()
        elif first == 0x2D or 0x30 <= first <= 0x39:
            self.number()
        elif first in _LITERALS:
            self.literal(_LITERALS[first])
        else:
            raise self.fail("looking for beginning of value")
        return False

    def key(self) -> None:
        self.space()
        if self.byte() != 0x22:
            raise self.fail("looking for beginning of object key string")
        self.string()
        self.space()
        if self.byte() != 0x3A:
            raise self.fail("after object key")
        self.at += 1

    def string(self) -> None:
        self.at += 1
        while True:
            self.at = _PLAIN.match(self.data, self.at).end()  # type: ignore[union-attr]
            byte = self.byte()
            if byte == 0x22:
                self.at += 1
                return
            if byte < 0x20:
                raise self.fail("in string literal")
            self.at += 1  # a backslash
            escape = self.byte()
            if escape == 0x75:  # u
                for _ in range(4):
                    self.at += 1
                    if self.byte() not in _HEX:
                        raise self.fail("in \\u hexadecimal character escape")
            elif escape not in _ESCAPES:
                raise self.fail("in string escape code")
            self.at += 1

    def number(self) -> None:
        if self.data[self.at] == 0x2D:
            self.at += 1
            if not 0x30 <= self.byte() <= 0x39:
                raise self.fail("in numeric literal")
        leading = self.data[self.at]
        self.at += 1
        if leading != 0x30:
            self.digits()
        if self.at < len(self.data) and self.data[self.at] == 0x2E:  # .
            self.at += 1
            if not 0x30 <= self.byte() <= 0x39:
                raise self.fail("after decimal point in numeric literal")
            self.digits()
        if self.at < len(self.data) and self.data[self.at] in b"eE":
            self.at += 1
            if self.byte() in b"+-":
                self.at += 1
            if not 0x30 <= self.byte() <= 0x39:
                raise self.fail("in exponent of numeric literal")
            self.digits()

    def digits(self) -> None:
        self.at = _DIGITS.match(self.data, self.at).end()  # type: ignore[union-attr]

    def literal(self, word: bytes) -> None:
        for expected in word[1:]:
            self.at += 1
            if self.byte() != expected:
                raise self.fail(f"in literal {word.decode()} (expecting {_quote(expected)})")
        self.at += 1


def scan(data: bytes) -> Scan:
    """Go's Decoder over ``data``: its error for the first value, or where that value ends."""
    scanner = _Scanner(data)
    try:
        scanner.value()
    except _Stop as stop:
        return Scan(stop.message, scanner.at)
    return Scan(None, scanner.at)
