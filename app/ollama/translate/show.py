"""mistral.rs model cards → Ollama's tags, ps and show answers.

mistral.rs reports only ids and load status, so family, parameter size, quantization and format are read
from the model id when it names them (``Qwen/Qwen3-4B``, ``mistral-7b-instruct-Q4_K_M.gguf``) and are
``unknown`` otherwise; ``size`` is 0 and ``digest`` is the sha256 of the id, stable across restarts.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from msgspec import UNSET

from app.models.catalog import Entry
from app.models.names import digest
from app.ollama import Details, ProcessModel, ShowResponse, TagModel
from app.ollama.manage import Tensor
from app.ollama.translate.options import model_options
from app.upstream.wire import ModelCard, ModelMetadata

__all__ = ["capabilities", "details", "process_model", "show_response", "tag_model"]

_UNKNOWN = "unknown"
_FAMILY = re.compile(r"[a-z]+\d*(?:\.\d+)?")
_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([bm])(?![a-z])")
_QUANT = re.compile(r"(?<![a-z0-9])(iq\d_[a-z]+|q\d_k_[sml]|q\d_k|q\d_\d|q\d|bf16|f16|f32)(?![a-z0-9])")
_VISION = ("vision", "-vl", "llava", "gemma-3", "gemma3", "mllama", "pixtral", "idefics", "smolvlm", "qwen2.5-vl")
_THINKING = ("qwen3", "deepseek-r1", "gpt-oss", "smollm3", "magistral", "phi-4-reasoning")
_EMBEDDING = ("embed", "bge-", "minilm", "e5-", "gte-")
# Ollama shows a model kept loaded forever as expiring about 292 years from now.
_FOREVER = timedelta(days=292 * 365)


def _base(model_id: str) -> str:
    return posixpath.basename(model_id.rstrip("/")).lower()


def _human_number(count: int) -> str:
    """Ollama's format.HumanNumber: 134.52M, 7.2B, 8B."""
    for scale, unit, digits in ((1e9, "B", 1), (1e6, "M", 2)):
        if count >= scale:
            number = count / scale
            return f"{number:.0f}{unit}" if number == int(number) else f"{number:.{digits}f}{unit}"
    return f"{count / 1e3:.0f}K" if count >= 1000 else str(count)


def details(model_id: str, metadata: ModelMetadata | None = None) -> Details:
    if metadata is not None:  # read from the model file: as Ollama shows it
        family = metadata.architecture
        return Details(parent_model="", format=metadata.format, family=family, families=[family],
                       parameter_size=_human_number(metadata.parameter_count),
                       quantization_level=metadata.file_type)  # fmt: skip
    base = _base(model_id)
    family = match.group(0) if (match := _FAMILY.match(base)) else _UNKNOWN
    size = _SIZE.search(base)
    quant = _QUANT.search(base)
    return Details(
        parent_model="",
        format="gguf" if "gguf" in model_id.lower() else "safetensors",
        family=family,
        families=[family],
        parameter_size=f"{size.group(1)}{size.group(2).upper()}" if size else _UNKNOWN,
        quantization_level=quant.group(0).upper() if quant else _UNKNOWN,
    )


def capabilities(model_id: str, card: ModelCard | None = None) -> list[str]:
    """What the model can do, from its files where the engine read them (``card``: the in-process engine reads the
    chat template and runs text models only). A mistral.rs server gives no facts: there vision and thinking are
    guessed from the id, and tools are not claimed, though they pass through."""
    lowered = model_id.lower()
    if any(hint in lowered for hint in _EMBEDDING):
        return ["embedding"]
    tools, thinking, vision = (card.tools, card.thinking, card.vision) if card is not None else (None, None, None)
    found = ["completion"]
    if tools:
        found.append("tools")
    if vision or (vision is None and any(hint in lowered for hint in _VISION)):
        found.append("vision")
    if thinking or (thinking is None and any(hint in lowered for hint in _THINKING)):
        found.append("thinking")
    return found


def _local_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat()


def tag_model(entry: Entry) -> TagModel:
    return TagModel(
        name=entry.name,
        model=entry.name,
        modified_at=_local_time(entry.card.created),
        size=entry.card.metadata.size if entry.card.metadata else 0,
        digest=digest(entry.id),
        details=details(entry.id, entry.card.metadata),
        capabilities=capabilities(entry.id, entry.card),
    )


def process_model(entry: Entry, upstreams: list[str] | None = None) -> ProcessModel:
    metadata = entry.card.metadata
    return ProcessModel(
        name=entry.name,
        model=entry.name,
        size=entry.card.metadata.size if entry.card.metadata else 0,
        digest=digest(entry.id),
        details=details(entry.id, entry.card.metadata),
        expires_at=(datetime.now().astimezone() + _FOREVER).isoformat(),
        size_vram=0,
        context_length=metadata.context_length if metadata and metadata.context_length else UNSET,
        upstreams=upstreams or None,
    )


def _model_info(model_id: str, info: Details) -> dict[str, Any]:
    model_info: dict[str, Any] = {"general.architecture": info.family, "general.basename": _base(model_id)}
    if info.parameter_size != _UNKNOWN:
        scale = 1e9 if info.parameter_size.endswith("B") else 1e6
        model_info["general.parameter_count"] = int(float(info.parameter_size[:-1]) * scale)
    return model_info


def _file_info(metadata: ModelMetadata, verbose: bool) -> dict[str, Any]:
    """Every key of the file's header, in Go's order (sorted); its arrays (tokenizer tables, even a one-item list
    of languages) are null unless ``verbose`` asks for them, as Ollama shows them."""
    arrays = metadata.arrays if verbose else dict.fromkeys(metadata.arrays)
    found = {**metadata.info, **arrays, "general.parameter_count": metadata.parameter_count}
    return dict(sorted(found.items()))


def _number(value: float) -> str:
    """As Go's ``%#v`` prints a JSON number: 40, 0.9."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _parameter_lines(options: Mapping[str, float | list[str]]) -> list[tuple[str, str, str]]:
    """(name, as ``parameters`` shows it, as a Modelfile's PARAMETER line does), a list one line per value, in
    name order: Go's ``%#v`` quotes a string; a Modelfile quotes one only when it holds a space."""
    lines = []
    for key, value in sorted(options.items()):
        if isinstance(value, list):
            lines += [(key, json.dumps(word), json.dumps(word) if " " in word else word) for word in value]
        else:
            lines.append((key, _number(value), _number(value)))
    return lines


def show_response(entry: Entry, verbose: bool = False) -> ShowResponse:
    metadata = entry.card.metadata
    info = details(entry.id, metadata)
    # What the model samples with when a request gives no options (the proxy applies them as Ollama does).
    parameters = _parameter_lines(model_options(entry.card.parameters))
    modelfile = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {entry.name}\n\n"
        f"FROM {entry.id}\n"
        'TEMPLATE """{{ .Prompt }}"""\n' + "".join(f"PARAMETER {key} {line}\n" for key, _, line in parameters)
    )
    return ShowResponse(
        modelfile=modelfile,
        parameters="\n".join(f"{key:<30} {shown}" for key, shown, _ in parameters),
        # mistral.rs applies the model's own chat template; the proxy sends it messages, not a prompt.
        template="{{ .Prompt }}",
        details=info,
        model_info=_model_info(entry.id, info) if metadata is None else _file_info(metadata, verbose),
        capabilities=capabilities(entry.id, entry.card),
        modified_at=_local_time(entry.card.created),
        tensors=[Tensor(tensor.name, tensor.type, tensor.shape) for tensor in metadata.tensors] if metadata else UNSET,
    )
