"""What a GGUF file's header says about its model: architecture, quantization, parameter count, context length, and
every key and tensor as Ollama's ``show`` lists them.

Only the header is read (key-value metadata and tensor shapes), never the weights. The format:
https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

from app.upstream.wire import ModelMetadata, TensorInfo

__all__ = ["read_metadata"]

# llama.cpp's file types (general.file_type), named as Ollama shows them.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS",
    20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
}  # fmt: skip
# ggml's tensor types (ggml.h), named as Ollama lists tensors.
_TENSOR_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
    12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
    20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}  # fmt: skip
# Ollama leaves these out of model_info: the name, and the template (shown as the template instead).
_HIDDEN = ("general.name", "tokenizer.chat_template")
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read(file: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = file.read(size)
    if len(data) != size:
        raise ValueError("the GGUF header ends early")
    return struct.unpack(fmt, data)[0]


# Bounds that a real header stays far within: a corrupt one must not make the reader allocate gigabytes.
_MAX_STRING = 1 << 24
_MAX_COUNT = 1 << 24


def _count(file: BinaryIO, fmt: str = "<Q") -> int:
    count: int = _read(file, fmt)
    if count > _MAX_COUNT:
        raise ValueError("the GGUF header is corrupt (a count out of range)")
    return count


def _string(file: BinaryIO) -> str:
    length = _read(file, "<Q")
    if length > _MAX_STRING:
        raise ValueError("the GGUF header is corrupt (a string out of range)")
    return file.read(length).decode("utf-8", "replace")


def _float32(value: float) -> float:
    """A 32-bit float as Go prints it: the shortest decimal that reads back as the same float32 (1e-05)."""
    for digits in range(1, 10):
        shortest = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", shortest))[0] == value:
            return shortest
    return value


def _value(file: BinaryIO, kind: int) -> Any:
    if kind == 6:
        return _float32(_read(file, "<f"))
    if kind in _SCALARS:
        return _read(file, _SCALARS[kind])
    if kind == _STRING:
        return _string(file)
    if kind == _ARRAY:
        item, count = _read(file, "<I"), _count(file)
        if item in _SCALARS and item != 6:  # numbers in one read, not one call each: 49,152 token types
            fmt = _SCALARS[item][1]
            data = file.read(struct.calcsize(fmt) * count)
            if len(data) != struct.calcsize(fmt) * count:
                raise ValueError("the GGUF header ends early")
            return list(struct.unpack(f"<{count}{fmt}", data))
        return [_value(file, item) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {kind}")


def read_metadata(path: Path) -> ModelMetadata:
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        version = _read(file, "<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        count, keys = _count(file), _count(file)
        values = {_string(file): _value(file, _read(file, "<I")) for _ in range(keys)}
        tensors = []
        for _ in range(count):
            name = _string(file)
            dims = [_read(file, "<Q") for _ in range(_count(file, "<I"))]
            kind = _read(file, "<I")
            _read(file, "<Q")  # its offset in the file
            tensors.append(TensorInfo(name=name, type=_TENSOR_TYPES.get(kind, str(kind)), shape=dims))
    architecture = str(values.get("general.architecture", "unknown"))
    info = {key: value for key, value in values.items() if not isinstance(value, list) and key not in _HIDDEN}
    arrays = {key: value for key, value in values.items() if isinstance(value, list)}
    context = values.get(f"{architecture}.context_length")
    return ModelMetadata(
        format="gguf",
        architecture=architecture,
        parameter_count=sum(math.prod(tensor.shape) for tensor in tensors),
        file_type=_FILE_TYPES.get(values.get("general.file_type", -1), "unknown"),
        context_length=context if isinstance(context, int) else None,
        size=path.stat().st_size,
        info=info,
        arrays=arrays,
        tensors=tensors,
        chat_template=template if isinstance(template := values.get("tokenizer.chat_template"), str) else None,
    )
