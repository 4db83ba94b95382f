"""The hostile bodies of bench/abuse.py, from 1 KB to 1 MB: each gets its 4xx with a message that names the fault.

How long each takes is the benchmark's to measure (bench/results-abuse.md); here a parse that grew faster than the
body would outlast the test's time limit at a megabyte.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.bounds import Bounds

_BENCH = Path(__file__).parents[2] / "bench"
_spec = importlib.util.spec_from_file_location("abuse", _BENCH / "abuse.py")
assert _spec is not None and _spec.loader is not None
abuse = sys.modules["abuse"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(abuse)
sys.path.remove(str(_BENCH))  # abuse.py put it first, for its own helpers

LIMITS = Bounds()


def _expected(shape: str, size: int) -> tuple[int, str]:
    """The status and a pattern of the error for ``shape`` at ``size`` bytes."""
    if shape.startswith("messages: thousands"):
        count = size // 13
        if count > LIMITS.messages:
            return 400, rf"too many messages: {count} \(the limit is {LIMITS.messages}\)"
        return 404, "model 'm' not found"  # the model is looked up before each message is read
    return {
        "keep_alive: one long run of digits": (400, r'time: invalid duration "9{64}"… \(\d+ characters\)'),
        "images: thousands of tiny ones": (400, rf"too many images: \d+ \(the limit is {LIMITS.images}\)"),
        "tools: thousands of empty ones": (400, rf"too many tools: \d+ \(the limit is {LIMITS.tools}\)"),
        "stop sequences: thousands of empty ones":
            (400, rf"too many stop sequences: \d+ \(the limit is {LIMITS.stop}\)"),
        "messages: nested arrays, as deep as the body":
            (400, re.escape("invalid request: Expected `object`, got `array` - at `$.messages[0]`")),
        "a string of lone surrogate escapes":
            (400, re.escape("invalid JSON: \\ud800 is half of a UTF-16 surrogate pair, with no other half: "
                            "not a character")),
        "context: thousands of tokens, no model": (400, "model is required"),
        "prompt: escapes only, an unknown model": (404, "model 'nope' not found"),
        # An unknown field is skipped unread, as Ollama (Go) skips it.
        "a string of invalid UTF-8": (404, "model 'm' not found"),
    }[shape]  # fmt: skip


def test_every_shape_has_an_expectation() -> None:
    assert len(abuse._hostile_bodies()) == 10
    for shape in abuse._hostile_bodies():
        assert _expected(shape, 40_000)


@pytest.mark.timeout(300)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.sampled_from(sorted(abuse._hostile_bodies())), size=st.integers(1_000, 1_000_000))
def test_a_hostile_body_of_any_size_gets_its_4xx(http: httpx.Client, shape: str, size: int) -> None:
    route, body = abuse._hostile_bodies(size)[shape]
    response = http.post(route, content=body, headers={"content-type": "application/json"})
    status, pattern = _expected(shape, size)
    assert response.status_code == status, (shape, size, response.text[:300])
    assert re.fullmatch(pattern, response.json()["error"]), (shape, size, response.text[:300])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("shape", sorted(abuse._hostile_bodies()))
def test_a_megabyte_of_each_shape_gets_its_4xx(http: httpx.Client, shape: str) -> None:
    route, body = abuse._hostile_bodies(1_000_000)[shape]
    response = http.post(route, content=body, headers={"content-type": "application/json"})
    status, pattern = _expected(shape, 1_000_000)
    assert (response.status_code, bool(re.fullmatch(pattern, response.json()["error"]))) == (status, True), shape
