"""Reading what the proxy's agent routes answer: named SSE events, and the chat a request translates to."""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = ["chat_counts", "named_events"]


def named_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """An SSE body as (event, data) pairs, checking each event's framing: one ``event:`` and one ``data:`` line."""
    events = []
    for block in text.split("\n\n")[:-1]:
        name, data = block.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    assert text.endswith("\n\n")
    return events


def chat_counts(http: httpx.Client, messages: list[dict[str, Any]], **options: Any) -> tuple[int, int]:
    """The prompt and answer token counts of the same conversation sent as an Ollama chat."""
    body = {"model": "mistral", "messages": messages, "stream": False, "options": options}
    answer = http.post("/api/chat", json=body).json()
    return answer["prompt_eval_count"], answer["eval_count"]
