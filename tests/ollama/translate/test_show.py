"""What show, tags and ps say of a model: facts from its files where there are any, and no claim where there are
none."""

from __future__ import annotations

import msgspec
import pytest

from app.models.catalog import Entry
from app.models.names import full_name
from app.ollama.translate.show import capabilities, process_model
from app.upstream.wire import ModelCard, ModelMetadata

SMOLLM2 = ModelMetadata(format="gguf", architecture="llama", parameter_count=134_515_008, file_type="Q4_1",
                        context_length=8192, size=91_000_000, info={})  # fmt: skip


def test_ps_gives_the_context_length_the_model_file_states() -> None:
    entry = Entry("smollm2:135m", ModelCard(id="smollm2:135m", metadata=SMOLLM2))
    assert msgspec.json.decode(msgspec.json.encode(process_model(entry)))["context_length"] == 8192


def test_ps_makes_no_claim_for_a_server_model_whose_context_it_does_not_know() -> None:
    entry = Entry("mistral-7b:latest", ModelCard(id="mistral-7b"))
    assert "context_length" not in msgspec.json.decode(msgspec.json.encode(process_model(entry)))


def test_tools_are_claimed_only_from_a_template_that_renders_them() -> None:
    assert capabilities("smollm2:135m", ModelCard(id="m", tools=True)) == ["completion", "tools"]
    assert capabilities("smollm2:135m", ModelCard(id="m", tools=False)) == ["completion"]
    assert capabilities("mistral-7b", ModelCard(id="m")) == ["completion"]  # a mistral.rs server shows no template


def test_thinking_and_vision_come_from_the_files_where_the_engine_read_them() -> None:
    # The id says qwen3 (thinks) and -vl (sees); the files say otherwise, and the files win.
    card = ModelCard(id="m", tools=False, thinking=False, vision=False)
    assert capabilities("qwen3-vl-4b", card) == ["completion"]
    assert capabilities("smollm2:135m", ModelCard(id="m", thinking=True)) == ["completion", "thinking"]
    # A mistral.rs server gives no facts: the id is all there is.
    assert capabilities("qwen3-vl-4b", ModelCard(id="m")) == ["completion", "vision", "thinking"]


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("smollm2:135m", "registry.ollama.ai/library/smollm2:135m"),
        ("smollm2", "registry.ollama.ai/library/smollm2:latest"),
        ("team/model:q4", "registry.ollama.ai/team/model:q4"),
        ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:Q4_K_M"),
        ("https://example.com:8080/org/repo", "example.com:8080/org/repo:latest"),
    ],
)
def test_a_model_is_named_in_full_as_ollamas_errors_name_it(name: str, full: str) -> None:
    assert full_name(name) == full
