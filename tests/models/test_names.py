from __future__ import annotations

import pytest

from app.models.names import digest, display_name, normalize, parse_aliases


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("mistral", "mistral:latest"),
        ("Mistral:Latest", "mistral:latest"),
        ("qwen/qwen3-4b", "qwen/qwen3-4b:latest"),
        ("llama3:8b", "llama3:8b"),
        ("host:5000/ns/model", "host:5000/ns/model:latest"),
    ],
)
def test_normalize(name: str, key: str) -> None:
    assert normalize(name) == key


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("Qwen/Qwen3-4B", "Qwen/Qwen3-4B:latest"),
        ("/models/tiny", "tiny:latest"),
        ("/models/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1:latest"),
        ("default", "default:latest"),
    ],
)
def test_display_name(model_id: str, name: str) -> None:
    assert display_name(model_id) == name


def test_digest_is_stable_sha256_hex() -> None:
    assert digest("mistral-7b") == "aa38360aae51407343377b750dffe0e1e5184aae75abfbed59659926695dccea"


def test_aliases() -> None:
    assert parse_aliases("mistral:latest=mistral-7b, llama = meta/llama ,") == {
        "mistral:latest": "mistral-7b",
        "llama:latest": "meta/llama",
    }
    with pytest.raises(ValueError, match="alias 'oops' is not of the form name=model-id"):
        parse_aliases("oops")
