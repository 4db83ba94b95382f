"""The GGUF header reader: the facts Ollama shows, from a header written here byte by byte, and from SmolLM2."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from app.ollama.translate.show import details
from app.upstream.embedded import default_cache_dir, resolve
from app.upstream.embedded.gguf import read_metadata


def _string(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


def _header(path: Path) -> Path:
    keys = [
        _string("general.architecture") + struct.pack("<I", 8) + _string("qwen3"),
        _string("general.file_type") + struct.pack("<I", 4) + struct.pack("<I", 15),
        _string("qwen3.context_length") + struct.pack("<I", 4) + struct.pack("<I", 40960),
        _string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + _string("a") + _string("b"),
    ]
    tensors = [_string("w1") + struct.pack("<I", 2) + struct.pack("<QQ", 1024, 1000) + struct.pack("<IQ", 12, 0),
               _string("w2") + struct.pack("<I", 1) + struct.pack("<Q", 1000) + struct.pack("<IQ", 0, 0)]  # fmt: skip
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(keys)) + b"".join(keys) + b"".join(tensors))
    return path


def test_a_header_gives_architecture_quantization_parameters_and_context(tmp_path: Path) -> None:
    metadata = read_metadata(_header(tmp_path / "m.gguf"))
    assert (metadata.format, metadata.architecture, metadata.file_type) == ("gguf", "qwen3", "Q4_K_M")
    assert (metadata.parameter_count, metadata.context_length) == (1024 * 1000 + 1000, 40960)
    assert metadata.info == {"general.architecture": "qwen3", "general.file_type": 15, "qwen3.context_length": 40960}
    shown = details("m", metadata)
    assert (shown.format, shown.family, shown.parameter_size, shown.quantization_level) == ("gguf", "qwen3", "1.02M",
                                                                                             "Q4_K_M")  # fmt: skip


@pytest.mark.parametrize("data", [b"GGML", b"GGUF\x01\x00\x00\x00", b"GGUF\x03\x00\x00\x00\x01"])
def test_what_is_not_a_readable_gguf_header_is_a_value_error(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "x.gguf").write_bytes(data)
    with pytest.raises((ValueError, struct.error)):
        read_metadata(tmp_path / "x.gguf")


def test_the_default_model_reads_as_ollama_shows_it() -> None:
    spec = resolve(None, default_cache_dir())
    shown = details(spec.name, read_metadata(Path(spec.location) / (spec.filename or "")))
    assert (shown.format, shown.family, shown.parameter_size, shown.quantization_level) == ("gguf", "llama", "134.52M",
                                                                                             "Q4_1")  # fmt: skip


def test_a_corrupt_header_is_refused_without_allocating_what_it_claims(tmp_path: Path) -> None:
    (tmp_path / "x.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 62))
    with pytest.raises(ValueError, match="corrupt"):
        read_metadata(tmp_path / "x.gguf")
