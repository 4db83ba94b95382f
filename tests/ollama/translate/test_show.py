"""What show, tags and ps say of a model: facts from its files where there are any, and no claim where there are
none."""

from __future__ import annotations

import msgspec

from app.models.catalog import Entry
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
    assert capabilities("smollm2:135m", renders_tools=True) == ["completion", "tools"]
    assert capabilities("smollm2:135m", renders_tools=False) == ["completion"]
    assert capabilities("mistral-7b", renders_tools=None) == ["completion"]  # a mistral.rs server shows no template
