"""An in-process emulator of the mistral.rs HTTP server.

Written from the 0.9.x reference, and checked against the real server: tests/conformance/test_transcripts.py
replays the answers recorded from mistral.rs 0.8.1 (the newest on crates.io) and the emulator matches each, except
for `/metrics`, which 0.8.1 does not serve and 0.9 does (so does the emulator). Models of category "text" behave
as that server's GGUF chat model; the default models serve every route.

The bytes on the wire follow /work/shared/reference/mistralrs-server.md: field order is the Rust
struct order, JSON is serde-compact, `Option` fields without `skip_serializing_if` are `null`,
f32 values print as serde/ryu does (shortest round-tripping f32 decimal).

Where each part is: `server` (the `Emulator`: state and routes), `replies` (`Reply`, `ModelEntry`, `Recorded`,
and the token accounting tests can predict), `chat` (chat and completion bodies and stream payloads),
`embeddings`, `stream` (SSE events and where a stream's faults strike), `faults` (held first bytes and broken
whole bodies), `wire` (serde's JSON and f32, axum's rejections), `front_door` (recording, `x-request-id`).
"""

from tests.emulator.chat import FINGERPRINT
from tests.emulator.embeddings import EMBEDDING_DIM
from tests.emulator.replies import ModelEntry, Recorded, Reply, _tokens
from tests.emulator.server import Emulator
from tests.emulator.stream import DONE, KEEPALIVE, MALFORMED, STALL_KEEPALIVE_INTERVAL
from tests.emulator.wire import _f32

# `_tokens` and `_f32` are here for the emulator's own tests, which check its token split and f32 printing.
__all__ = [
    "DONE",
    "EMBEDDING_DIM",
    "FINGERPRINT",
    "KEEPALIVE",
    "MALFORMED",
    "STALL_KEEPALIVE_INTERVAL",
    "Emulator",
    "ModelEntry",
    "Recorded",
    "Reply",
    "_f32",
    "_tokens",
]
