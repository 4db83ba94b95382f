"""The body of `/v1/embeddings`: a vector of `EMBEDDING_DIM` f32 values per input, drawn from the input's SHA-256 so
that the same text always gets the same vector."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from tests.emulator.replies import _words
from tests.emulator.wire import _f32

EMBEDDING_DIM = 8


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [_f32((byte - 127.5) / 127.5) for byte in digest[:EMBEDDING_DIM]]


def _embedding_value(vector: list[float], encoding: Any) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def _embeddings_body(body: dict[str, Any]) -> dict[str, Any]:
    raw = body["input"]
    inputs = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else [raw]
    texts = [x if isinstance(x, str) else json.dumps(x) for x in inputs]
    encoding = body.get("encoding_format")
    data = [
        {"object": "embedding", "embedding": _embedding_value(_embedding(t), encoding), "index": i}
        for i, t in enumerate(texts)
    ]
    words = sum(_words(t) for t in texts)
    usage = {"prompt_tokens": words, "total_tokens": words}
    return {"object": "list", "data": data, "model": body.get("model", "default"), "usage": usage}
