"""mistral.rs log probabilities → Ollama's.

| mistral.rs                                  | Ollama                                            |
|---------------------------------------------|---------------------------------------------------|
| `logprob`: natural log (base 10 before 0.9.1) | `logprob`: natural log, as OpenAI               |
| `token` (text), `bytes`                     | `token`; `bytes` = its UTF-8, omitted when empty  |
| `top_logprobs[]`: `token` id, `bytes` text  | `top_logprobs[]`: `token` text, `bytes`, `logprob`; |
|                                             | at most `top_logprobs` of them, omitted for 0      |
"""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from app.ollama import Logprob, TokenLogprob
from app.upstream import wire

__all__ = ["to_ollama_logprobs"]


def to_ollama_logprobs(upstream: wire.Logprob | list[wire.Logprob], top: int, scale: float = 1.0) -> list[Logprob]:
    """A streamed chunk's one token, or a whole answer's list, keeping ``top`` alternatives for each;
    ``scale`` turns the upstream's logarithms into natural ones (ln 10 for a server that reports base 10)."""
    entries = upstream if isinstance(upstream, list) else [upstream]
    return [_logprob(entry, top, scale) for entry in entries]


def _logprob(entry: wire.Logprob, top: int, scale: float) -> Logprob:
    converted = Logprob(token=entry.token, logprob=entry.logprob * scale, bytes=_utf8(entry.token))
    if top and entry.top_logprobs:
        converted.top_logprobs = [_alternative(alternative, scale) for alternative in entry.top_logprobs[:top]]
    return converted


def _alternative(alternative: wire.TopLogprob, scale: float) -> TokenLogprob:
    text = alternative.bytes or ""
    return TokenLogprob(token=text, logprob=alternative.logprob * scale, bytes=_utf8(text))


def _utf8(text: str) -> list[int] | UnsetType:
    return list(text.encode()) or UNSET
