"""The README's route table and error_type list, read against the code: a route or a class added without its line
there fails here."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from app import errors
from app.http.errors import _HTTP_ERROR_TYPES
from app.routes import ROUTES
from otel.asgi import BAD_FRAMING
from otel.genai import CLIENT_DISCONNECTED

README = (Path(__file__).parents[1] / "README.md").read_text()


def _section(start: str) -> str:
    return README.split(start, 1)[1].split("\n\n", 1)[0]


def test_the_route_table_lists_every_route_and_only_them() -> None:
    table = _section("| route | behaviour |")
    listed = {path for cell in re.findall(r"^\| ([^|]*) \|", table, flags=re.MULTILINE)
              for path in re.findall(r"(/[\w./{}-]*)", cell.replace("`", " "))}  # fmt: skip
    served = {re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path) for route in ROUTES if isinstance(route, Route)}
    assert listed - {"/"} <= served and served - {"/"} <= listed, (sorted(served - listed), sorted(listed - served))
    assert "/" in served


def _subclasses(cls: type) -> set[type]:
    return {cls} | {sub for child in cls.__subclasses__() for sub in _subclasses(child)}


def test_the_error_type_list_is_every_class_the_code_emits() -> None:
    paragraph = README.split("- **`error_type`** is `none` or a short stable class:", 1)[1].split("\n- **", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", paragraph))
    emitted = {cls.error_type for cls in _subclasses(errors.ProxyError)}
    emitted |= set(_HTTP_ERROR_TYPES.values()) | {"http_error", CLIENT_DISCONNECTED, BAD_FRAMING}
    assert listed - {"none"} == emitted, (sorted(emitted - listed), sorted(listed - emitted))
