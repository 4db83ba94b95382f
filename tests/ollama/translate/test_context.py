"""Generate's context: the conversation, round-tripped through the client, and refused when it is not ours."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.ollama.translate.context import context_messages, conversation_context


def test_a_context_returns_the_turns_it_was_made_from() -> None:
    turns = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi, é 🙂"}]
    context = conversation_context(turns, "Hello!")
    assert all(isinstance(value, int) for value in context)
    assert context_messages(context) == [{"role": "user", "content": "Hi, é 🙂"},
                                         {"role": "assistant", "content": "Hello!"}]  # fmt: skip


@pytest.mark.parametrize("context", [[1, 2, 3], [128000, 9707], [-1], [0x110000]])
def test_a_context_from_elsewhere_is_a_clear_400(context: list[int]) -> None:
    with pytest.raises(InvalidRequest, match="context was not returned by this server"):
        context_messages(context)
