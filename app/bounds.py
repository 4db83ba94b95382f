"""How much one request may carry: every list in it is counted before any work is done for it.

A count is a 400 naming the limit; sizes (an image, all of a request's images) are a 413, as the body's own limit.
The routes check what they decoded; the body's items are bounded earlier, as it arrives (``BodyLimitMiddleware``),
so that no list is ever built from a body of a million tiny values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.errors import InvalidRequest, PayloadTooLarge

__all__ = ["Bounds", "decoded_size"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class Bounds:
    messages: int = 4096  # per chat
    images: int = 100  # per request, all messages together (Anthropic's limit per request)
    image_bytes: int = 20 * MiB  # each, decoded
    image_total_bytes: int = 32 * MiB  # all of a request's, decoded
    tools: int = 128  # OpenAI's limit per request
    stop: int = 64  # stop sequences
    content_parts: int = 256  # per message, on /v1/chat/completions
    inputs: int = 2048  # embedding inputs per request (OpenAI's limit)
    body_items: int = 1_000_000  # JSON values in a body, counted by its commas

    def count(self, what: str, found: int, limit: int) -> None:
        if found > limit:
            raise InvalidRequest(f"too many {what}: {found} (the limit is {limit})")

    def check_images(self, images: Iterable[str]) -> None:
        """Each image and all of them together, by the size their base64 decodes to."""
        total = 0
        for image in images:
            size = decoded_size(image)
            if size > self.image_bytes:
                raise PayloadTooLarge(f"image too large: {size} bytes (the limit is {self.image_bytes})")
            total += size
            if total > self.image_total_bytes:
                limit = self.image_total_bytes
                raise PayloadTooLarge(f"images too large: over {limit} bytes in one request (the limit is {limit})")


def decoded_size(image: str) -> int:
    return len(image) * 3 // 4 - image[-2:].count("=")
